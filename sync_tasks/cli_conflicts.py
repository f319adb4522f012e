"""`ctsync conflicts list`: HubSpot edits the sync overwrote or kept (logic in `sync_tasks.conflicts`).
Values are masked unless `--show-pii` is given."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sync_tasks.cli_rejected import PiiOpt, SinceOpt, _redis, _since, shown

app = typer.Typer(help="HubSpot edits met by the sync, with both values and the rule applied", no_args_is_help=True)
console = Console()


@app.command("list")
def list_(since: SinceOpt = None, limit: Annotated[int, typer.Option(help="at most this many")] = 100,
          as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
          show_pii: PiiOpt = False) -> None:
    """Conflicts, oldest first."""
    from sync_tasks import conflicts

    items = [shown(e, show_pii) for e in conflicts.entries(_redis(), _since(since), count=limit)]
    if as_json:
        for item in items:
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        return
    table = Table("id", "contact", "records", "property", "HubSpot", "commercetools", "rule", "outcome")
    for item in items:
        table.add_row(item["id"], item.get("hs_id", ""), ",".join(item["record_ids"]), item.get("property", ""),
                      item.get("hubspot_value", ""), item.get("commercetools_value", ""), item.get("rule", ""),
                      item.get("outcome", ""))
    console.print(table)
    console.print(f"{len(items)} shown")
