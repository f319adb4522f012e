"""`ctsync`: set up HubSpot, run and follow backfills, inspect state, run the demo."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sync_tasks.cli_conflicts import app as conflicts_app
from sync_tasks.cli_dlq import app as dlq_app
from sync_tasks.cli_lifecycle import app as lifecycle_app
from sync_tasks.cli_rejected import app as rejected_app
from sync_tasks.constants import Entity, Keys
from sync_tasks.settings import ConfigError, get_settings

app = typer.Typer(help="commercetools → HubSpot sync", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(rejected_app, name="rejected")
app.add_typer(lifecycle_app, name="lifecycle")
console = Console()


def _settings_or_exit() -> Any:
    try:
        return get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _clients() -> tuple[Any, Any]:
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.redis_conn import get_redis

    settings = _settings_or_exit()
    return settings, HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)


@app.command()
def setup() -> None:
    """Create the HubSpot property group and properties the sync writes (idempotent)."""
    from sync_tasks.commerce_schema import setup_all
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.schema import SchemaConflict

    settings, hubspot = _clients()
    try:
        report = setup_all(hubspot, settings, get_redis())
    except SchemaConflict as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"created groups: {report.created_groups or 'none'}")
    console.print(f"created properties: {report.created or 'none'}")
    console.print(f"already present: {len(report.existing)}")


def follow_run(run_id: str, timeout: float) -> dict[str, Any]:
    """A progress bar fed by the run's counters in Redis."""
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.runs import wait_for_run
    from sync_tasks.state import SyncState

    state = SyncState(get_redis())
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task(run_id, total=None, counts="")

        def show(run: dict[str, Any]) -> None:
            done = sum(run[f] for f in ("created", "updated", "skipped", "failed"))
            counts = " ".join(f"{f}={run[f]}" for f in ("extracted", "matched", "created", "updated",
                                                        "skipped", "failed"))
            if run.get("rollups"):  # an order backfill writes its people's rollups at the end
                counts += f" rollups={run['rollups']}:{run.get('rollups_written', 0)}"
            if run.get("joins"):  # a customer backfill writes its e-mail joins at the end
                counts += f" joins={run['joins']}"
            if run.get("links"):  # and the contact-company associations left for full batches
                counts += f" links={run['links']}"
            progress.update(bar, completed=done, total=run["extracted"] or None, counts=counts)

        return wait_for_run(state, run_id, timeout, show)


def _since(value: str | None) -> str | None:
    """A date or datetime from the command line → commercetools' UTC millisecond form."""
    if value is None:
        return None
    import datetime as dt

    from sync_tasks.extract import format_ts

    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        console.print(f"[red]--since: {value!r} is not a date (use YYYY-MM-DD or an ISO datetime)[/red]")
        raise typer.Exit(2) from None
    return format_ts(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))


@app.command()
def backfill(
    entity: Annotated[Entity, typer.Argument(help="what to backfill")] = Entity.CUSTOMERS,
    since: Annotated[str | None, typer.Option(help="only records modified since (ISO date)")] = None,
    store: Annotated[str | None, typer.Option(help="only this store key")] = None,
    resume: Annotated[str | None, typer.Option(help="resume this run id after an interruption")] = None,
    wait: Annotated[bool, typer.Option(help="follow progress until done")] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 3600.0,
    confirm: Annotated[bool, typer.Option("--confirm", help="show the plan's totals and ask first")] = False,
) -> None:
    """A full sync through the same tasks; ignores watermark and fingerprints; resumable."""
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.runs import send_backfill
    from sync_tasks.state import SyncState

    _settings_or_exit()
    since = _since(since)
    state = SyncState(get_redis())
    if resume and not get_redis().exists(Keys.run(resume)):
        console.print(f"[red]no run {resume!r} to resume[/red]")
        raise typer.Exit(2)
    if confirm and entity is Entity.CUSTOMERS:
        from sync_tasks.cli_mapping import confirm_backfill

        if not confirm_backfill(store):
            console.print("backfill not started")
            raise typer.Exit(1)
    run_id = resume or state.start_run(entity.value, "backfill", since=since, store=store)
    send_backfill(entity.value, since, store, run_id)
    console.print(f"backfill run: {run_id}")
    if wait:
        run = follow_run(run_id, timeout)
        console.print(json.dumps({k: run[k] for k in ("extracted", "matched", "created", "updated", "skipped",
                                                      "failed")}))


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="one JSON object instead of tables")] = False,
           timeout: Annotated[float, typer.Option(help="seconds to wait for workers to answer")] = 1.0) -> None:
    """Queues, workers alive, watermarks and lag, the last runs, DLQ and rejected counts, the budget."""
    from sync_tasks import status as st
    from sync_tasks.redis_conn import get_redis
    from workers import app as celery_app

    report = st.gather(get_redis(), _settings_or_exit(), celery_app, timeout)
    if as_json:
        sys.stdout.write(st.as_json(report) + "\n")
    else:
        st.render(report, console)


@app.command()
def flower() -> None:
    """Start Flower behind basic auth (FLOWER_BASIC_AUTH); refuses to serve an open dashboard."""
    from sync_tasks.flower import exec_flower

    try:
        exec_flower(_settings_or_exit())
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def metrics() -> None:
    """Serve the fleet's Prometheus metrics on METRICS_ADDRESS:METRICS_PORT (/metrics)."""
    from sync_tasks import logs
    from sync_tasks.metrics import serve
    from sync_tasks.redis_conn import get_redis

    settings = _settings_or_exit()
    logs.configure(json_lines=settings.log_json, pii=settings.log_pii)
    serve(get_redis(), settings)


@app.command()
def demo(
    size: Annotated[int, typer.Option(help="customers in the commercetools sandbox")] = 2000,
    changes: Annotated[int, typer.Option(help="customers to change before the delta")] = 50,
    interval: Annotated[int, typer.Option(help="SYNC_INTERVAL for the demo fleet")] = 10,
) -> None:
    """Run the whole sync end to end against the sandboxes and check the result."""
    from sync_tasks.demo import run_demo

    raise typer.Exit(run_demo(size=size, changes=changes, interval=interval, console=console))


from sync_tasks.cli_mapping import mapping_app, plan  # noqa: E402 - the sub-commands, registered last

app.add_typer(mapping_app, name="mapping")
app.command("plan")(plan)

if __name__ == "__main__":  # pragma: no cover
    app()
