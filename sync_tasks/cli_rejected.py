"""`ctsync rejected`: list, show and export the writes HubSpot or commercetools rejected (logic in
`sync_tasks.rejected`). Personal values are masked unless `--show-pii` is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="the rejected-update log: writes HubSpot or commercetools refused", no_args_is_help=True)
console = Console()

SinceOpt = Annotated[str | None, typer.Option("--since", help="ISO date/time (UTC) or 30m, 2h, 1d")]
PiiOpt = Annotated[bool, typer.Option("--show-pii", help="show payload values and messages unmasked")]


def _redis() -> Any:
    from sync_tasks.redis_conn import get_redis

    return get_redis()


def _since(value: str | None) -> float | None:
    from sync_tasks.dlq import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        console.print(f"[red]--since: {exc}[/red]")
        raise typer.Exit(2) from None


def shown(entry: dict[str, Any], show_pii: bool) -> dict[str, Any]:
    from sync_tasks.rejected import redact

    return entry if show_pii else redact(entry)


@app.command("list")
def list_(since: SinceOpt = None, limit: Annotated[int, typer.Option(help="at most this many")] = 100,
          as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
          show_pii: PiiOpt = False) -> None:
    """Rejections, oldest first."""
    from sync_tasks import rejected

    items = [shown(e, show_pii) for e in rejected.entries(_redis(), _since(since), count=limit)]
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        return
    table = Table("id", "api", "entity", "records", "status", "category", "message", "task")
    for item in items:
        table.add_row(item["id"], item.get("api", ""), item.get("entity", ""), ",".join(item["record_ids"] or []),
                      str(item["status"]), item.get("category", ""), str(item.get("message", ""))[:80],
                      item.get("task", ""))
    console.print(table)
    console.print(f"{len(items)} shown")


@app.command()
def show(entry_id: Annotated[str, typer.Argument(help="the entry id from `ctsync rejected list`")],
         show_pii: PiiOpt = False) -> None:
    """One rejection in full: payload, error response, ids, task, time."""
    from sync_tasks import rejected

    entry = rejected.get(_redis(), entry_id)
    if entry is None:
        console.print(f"[red]no rejected entry {entry_id!r}[/red]")
        raise typer.Exit(1)
    sys.stdout.write(json.dumps(shown(entry, show_pii), indent=2, ensure_ascii=False) + "\n")


@app.command()
def export(since: SinceOpt = None,
           fmt: Annotated[str, typer.Option("--format", help="jsonl (one JSON object per line)")] = "jsonl",
           output: Annotated[Path | None, typer.Option(help="file to write; default standard output")] = None,
           show_pii: PiiOpt = False) -> None:
    """Every rejection since a time, as JSON lines."""
    from sync_tasks import rejected

    if fmt != "jsonl":
        console.print(f"[red]--format: {fmt!r} is not supported (jsonl)[/red]")
        raise typer.Exit(2)
    start = _since(since)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        for entry in rejected.export(_redis(), start):
            out.write(json.dumps(shown(entry, show_pii), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if output:
            out.close()
    if output:
        console.print(f"{count} entries written to {output}")
