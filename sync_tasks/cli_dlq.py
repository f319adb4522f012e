"""`ctsync dlq`: list, show, replay and purge dead-lettered writes (logic in `sync_tasks.dlq`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="the dead-letter queue: writes that failed permanently or ran out of retries",
                  no_args_is_help=True)
console = Console()

TypeOpt = Annotated[str | None, typer.Option("--type", help="only this entity (customers, companies, …)")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="permanent | exhausted (retries ran out)")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="last failure since: ISO date/time or 30m, 2h, 1d")]


class CeleryReplayer:
    """Replays through the fleet: current records from commercetools, the usual chain on the queues."""

    def __init__(self) -> None:
        from sync_tasks import tasks

        self.tasks = tasks

    def fetch(self, entity: str, record_ids: list[str]) -> list[dict[str, Any]]:
        if entity == "orders":
            from sync_tasks.commerce_tasks import fetch_orders

            return fetch_orders(record_ids)
        if entity != "customers":
            raise ValueError(f"no replay path for entity {entity!r}")
        return self.tasks.fetch_customers(record_ids)

    def enqueue(self, entity: str, records: list[dict[str, Any]], ctx: dict[str, Any]) -> None:
        from sync_tasks.extract import chunks
        from sync_tasks.settings import get_settings

        for chunk in chunks(entity, records, get_settings()):
            self.tasks.enqueue_chunk(chunk, ctx)

    def push(self, plan: dict[str, Any], ctx: dict[str, Any]) -> None:
        from sync_tasks.constants import Queue

        self.tasks.push.apply_async(({"ctx": ctx, "plan": plan},), queue=Queue.PUSH.value)

    def resend(self, task: str, args: list[Any]) -> None:
        self.tasks.app.send_task(task, args=args)


def _dlq() -> Any:
    from sync_tasks.dlq import DeadLetters
    from sync_tasks.redis_conn import get_redis

    return DeadLetters(get_redis())


def _since(value: str | None) -> float | None:
    from sync_tasks.dlq import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError:
        console.print(f"[red]--since: {value!r} is neither an ISO date/time nor a duration like 2h[/red]")
        raise typer.Exit(2) from None


def _kind(value: str | None) -> str | None:
    from sync_tasks.dlq import KINDS

    if value is not None and value not in KINDS:
        console.print(f"[red]--kind: {value!r} is not one of {', '.join(KINDS)}[/red]")
        raise typer.Exit(2)
    return value


@app.command("list")
def list_(type_: TypeOpt = None, kind: KindOpt = None, since: SinceOpt = None,
          limit: Annotated[int, typer.Option(help="at most this many")] = 100,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Entries, oldest first: ids, error and attempts (no payloads: `show` has them)."""
    dlq = _dlq()
    entries = dlq.entries(since=_since(since), entity=type_, kind=_kind(kind), limit=limit)
    if as_json:
        sys.stdout.write(json.dumps({"size": dlq.size(), "entries": [e.summary() for e in entries]}) + "\n")
        return
    table = Table("id", "task", "type", "kind", "records", "status", "category", "attempts", "last failure")
    import time

    for e in entries:
        table.add_row(e.id, e.task, e.entity, e.kind, str(len(e.record_ids)), str(e.error.get("status")),
                      str(e.error.get("category")), str(e.attempts),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.last_failure)))
    console.print(table)
    console.print(f"DLQ entries: {dlq.size()}")


@app.command()
def show(entry_id: Annotated[str, typer.Argument(help="entry id from `ctsync dlq list`")]) -> None:
    """One entry in full: record ids, HubSpot payload, last error response, attempts, times."""
    entry = _dlq().get(entry_id)
    if entry is None:
        console.print(f"[red]no DLQ entry {entry_id!r}[/red]")
        raise typer.Exit(1)
    sys.stdout.write(json.dumps(entry.as_dict(), indent=2, default=str) + "\n")


@app.command()
def replay(ids: Annotated[list[str] | None, typer.Argument(help="entry ids")] = None,
           all_: Annotated[bool, typer.Option("--all", help="every entry (narrowed by the filters)")] = False,
           type_: TypeOpt = None, kind: KindOpt = None, since: SinceOpt = None,
           wait: Annotated[bool, typer.Option(help="wait until the replayed records are written")] = False,
           timeout: Annotated[float, typer.Option(help="seconds to wait")] = 600.0) -> None:
    """Send entries through match → map → push again, from current commercetools data. Each entry
    is replayed once; creates are upserts, so nothing is created twice."""
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.state import SyncState

    dlq = _dlq()
    filtered = all_ or type_ is not None or kind is not None or since is not None
    if not ids and not filtered:
        console.print("[red]name entry ids, or use --all / --type / --kind / --since[/red]")
        raise typer.Exit(2)
    if ids:
        entries = [e for e in (dlq.get(i) for i in ids) if e is not None]
        missing = set(ids) - {e.id for e in entries}
        if missing:
            console.print(f"[yellow]not in the DLQ: {', '.join(sorted(missing))}[/yellow]")
    else:
        entries = dlq.entries(since=_since(since), entity=type_, kind=_kind(kind))
    state = SyncState(get_redis())
    report = dlq.replay(entries, CeleryReplayer(), state)
    sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    if wait and report.run_id:
        from sync_tasks.runs import wait_for_run

        run = wait_for_run(state, report.run_id, timeout)
        sys.stdout.write(json.dumps({k: run[k] for k in ("extracted", "created", "updated", "skipped", "failed")})
                         + "\n")
    if report.skipped:
        raise typer.Exit(1)


@app.command()
def purge(ids: Annotated[list[str] | None, typer.Argument(help="entry ids")] = None,
          all_: Annotated[bool, typer.Option("--all", help="every entry")] = False,
          yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete entries for good (after fixing the data by hand, say)."""
    dlq = _dlq()
    if not ids and not all_:
        console.print("[red]name entry ids, or use --all[/red]")
        raise typer.Exit(2)
    what = "every DLQ entry" if all_ and not ids else f"{len(ids or [])} DLQ entries"
    if not yes and not typer.confirm(f"delete {what}?"):
        raise typer.Exit(1)
    sys.stdout.write(json.dumps({"purged": dlq.purge(ids or None)}) + "\n")
