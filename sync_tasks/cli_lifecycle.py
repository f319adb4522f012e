"""`ctsync lifecycle show EMAIL_OR_ID`: one person's order ledger and the lifecycle events fired."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="lifecycle events: first/repeat purchase, churn risk, subscription milestones",
                  no_args_is_help=True)
console = Console()


def resolve_person(r: Any, who: str) -> str | None:
    """An e-mail, a commercetools customer id or a HubSpot contact id → the HubSpot contact id."""
    from sync_tasks.constants import Keys
    from sync_tasks.mapping import normalize_email
    from sync_tasks.match import CONTACTS
    from sync_tasks.state import SyncState

    state = SyncState(r)
    if "@" in who:
        email = normalize_email(who)
        return state.lookup_emails([email]).get(email) if email else None
    by_customer = state.lookup_ids(CONTACTS, [who])
    if who in by_customer:
        return by_customer[who]
    known = r.exists(Keys.ledger(who)) or r.exists(Keys.lifecycle(who))
    return who if known else None


@app.command()
def show(who: Annotated[str, typer.Argument(help="e-mail, commercetools customer id or HubSpot contact id")],
         as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Print a customer's ledger and the lifecycle events fired, with dates."""
    from sync_tasks.lifecycle import show as lifecycle_show
    from sync_tasks.redis_conn import get_redis

    r = get_redis()
    person = resolve_person(r, who)
    if person is None:
        console.print(f"[red]no ledger for {who!r}: not matched to a HubSpot contact yet[/red]")
        raise typer.Exit(1)
    data = lifecycle_show(r, person)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console.print(f"HubSpot contact {person}; churn index (last counted order): {data['churn_index'] or '-'}")
    orders = _table("ledger", "created", "order", "state", "total", "store", "subscription", "first seen")
    for o in data["orders"]:
        orders.add_row(o["created_at"], o["order_id"], o["state"], f"{o['total']} {o['currency']}", o["store"],
                       o["subscription"] or "-", o["first_seen"] or "-")
    console.print(orders)
    events = _table("events fired", "event", "date", "order", "number", "live/historical", "fired at", "sent")
    for e in data["events"]:
        events.add_row(e["key"], e["at"], e["order_id"] or "-", str(e["number"]),
                       "historical" if e["historical"] else "live", e["fired_at"], "yes" if e["sent"] else "pending")
    console.print(events)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")  # ids and dates wrap, never cut
    return table
