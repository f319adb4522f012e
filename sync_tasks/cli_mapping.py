"""`ctsync mapping check|show` and `ctsync plan`: look at the mapping and at what a sync would do,
without writing anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sync_tasks.constants import Entity
from sync_tasks.mapping_file import MappingError, MappingFile, read_mapping

mapping_app = typer.Typer(help="check the field mapping file and preview mapped records", no_args_is_help=True)
console = Console()


def _settings() -> Any:
    from sync_tasks.settings import ConfigError, get_settings

    try:
        return get_settings()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _mapping(path: Path | None) -> MappingFile:
    try:
        if path is not None:
            return read_mapping(path)
        from sync_tasks.mapping import load_mapping

        return load_mapping(_settings())
    except MappingError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _source(spec: Any) -> str:
    if spec.transform == "constant":
        return repr(spec.value)
    if spec.transform == "concat":
        return f" {spec.separator!r} ".join(spec.sources or [])
    parts = [spec.source or "", f"{spec.address} address" if spec.transform == "address" else "",
             f"part={spec.part}" if spec.part else ""]
    return " ".join(p for p in parts if p)


@mapping_app.command("check")
def check(file: Annotated[Path | None, typer.Option("--file", help="a mapping file (default: MAPPING_FILE)")] = None
          ) -> None:
    """Validate the mapping file and print it as a table."""
    from sync_tasks.schema import is_hubspot_defined

    mapping = _mapping(file)
    table = Table("section", "HubSpot property", "transform", "source", "type / fieldType", "created by setup",
                  title="field mapping")
    for name, section in mapping.sections().items():
        for prop, spec in section.properties.items():
            kind = f"{spec.hs_type} / {spec.hs_field_type}"
            if spec.options:
                kind += f" [{', '.join(spec.options)}]"
            table.add_row(f"{name} ({section.object})", prop + (" (key)" if prop == section.id_property else ""),
                          spec.transform, _source(spec), kind,
                          "no (HubSpot's)" if is_hubspot_defined(section.object, prop, spec) else "yes")
    console.print(table)
    c = mapping.consent
    if c.enabled:
        subs = ", ".join(f"{s.subscription_id} ({s.legal_basis})" for s in c.subscriptions)
        console.print(f"consent: {c.opt_in} (date {c.opt_in_date}) → subscriptions {subs}; "
                      f"re-subscribe when newer: {c.resubscribe_if_newer}", highlight=False)
    else:
        console.print("consent: off")
    console.print("[green]mapping OK[/green]")


def _ct() -> Any:
    from sync_tasks.commercetools_client import CommercetoolsClient

    return CommercetoolsClient(_settings())


def _hubspot() -> Any:
    from sync_tasks.hubspot_client import HubSpotClient
    from sync_tasks.limiter import RateLimiter
    from sync_tasks.redis_conn import get_redis

    settings = _settings()
    return HubSpotClient(settings, RateLimiter(get_redis(), settings), wait_for_budget=True)


@mapping_app.command("show")
def show(customer_id: Annotated[str, typer.Argument(help="commercetools customer id")],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the HubSpot properties one commercetools customer maps to."""
    from sync_tasks.errors import SyncError
    from sync_tasks.mapping import map_company, map_customer
    from sync_tasks.plan import read_customers

    mapping = _mapping(None)
    try:
        found = read_customers(_ct(), ids=[customer_id])
    except SyncError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    if not found:
        console.print(f"[red]no customer {customer_id!r} in commercetools[/red]")
        raise typer.Exit(1)
    mapped = map_customer(found[0], mapping)
    company = map_company(found[0], mapping)
    if as_json:
        sys.stdout.write(json.dumps({"properties": mapped.properties, "rejected": mapped.rejected,
                                     "warnings": mapped.warnings, "company": company}) + "\n")
        return
    table = Table("property", "value", title=f"contact properties of customer {customer_id}")
    for name, value in sorted(mapped.properties.items()):
        table.add_row(name, value if len(value) <= 120 else f"{value[:117]}… ({len(value)} characters)")
    console.print(table)
    for name, reason in mapped.rejected.items():
        console.print(f"[yellow]left out: {name}: {reason}[/yellow]", highlight=False)
    for warning in mapped.warnings:
        console.print(f"[yellow]{warning}[/yellow]", highlight=False)
    console.print(f"company: {company}" if company else "company: none", highlight=False)


def build_plan(ids: list[str] | None = None, limit: int | None = None, store: str | None = None,
               force: bool = False) -> Any:
    from sync_tasks.plan import plan_customers, read_customers
    from sync_tasks.redis_conn import get_redis
    from sync_tasks.state import SyncState

    settings = _settings()
    mapping = _mapping(None)
    ct = _ct()
    records = read_customers(ct, ids=ids, limit=limit, store=store)
    return plan_customers(records, ct, _hubspot(), SyncState(get_redis()), settings, mapping, force=force)


def print_totals(totals: dict[str, int]) -> None:
    console.print("  ".join(f"{k}={v}" for k, v in totals.items()), highlight=False)


def plan(
    entity: Annotated[Entity, typer.Argument(help="what to plan")] = Entity.CUSTOMERS,
    limit: Annotated[int | None, typer.Option(help="only the first N records (lastModifiedAt order)", min=1)] = None,
    ids: Annotated[list[str] | None, typer.Option("--ids", help="these record ids (repeat, or comma-separated)")
                   ] = None,
    backfill: Annotated[bool, typer.Option("--backfill", help="what a backfill would send (not a delta)")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the field-level diff the next sync would apply; reads commercetools and HubSpot, writes nothing."""
    from sync_tasks.errors import SyncError

    if entity is not Entity.CUSTOMERS:
        console.print(f"[red]plan covers customers only, not {entity.value}[/red]")
        raise typer.Exit(2)
    wanted = [i for chunk in ids or [] for i in chunk.split(",") if i.strip()] or None
    try:
        report = build_plan(ids=wanted, limit=limit, force=backfill)
    except SyncError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), default=str) + "\n")
        return
    for record in report.records:
        if record.action == "unchanged":
            continue
        target = f"contact {record.hs_id}" if record.hs_id else "new contact"
        console.print(f"[bold]{record.action}[/bold] {target} ← customers {', '.join(record.record_ids)}",
                      highlight=False)
        for prop, change in record.changes.items():
            old, new = (v if len(v) <= 80 else f"{v[:77]}…" for v in (change["old"], change["new"]))
            console.print(f"    {prop}: {old!r} → {new!r}", highlight=False)
    for item in report.rejected:
        console.print(f"[yellow]left out: record {item['record_id']} {item['property']}: {item['reason']}[/yellow]",
                      highlight=False)
    for item in report.consent:
        if item["new"]:
            console.print(f"consent: record {item['record_id']} subscription {item['subscription']}: "
                          f"{item['old']} → {item['new']} ({item['reason']})", highlight=False)
    print_totals(report.totals)


def confirm_backfill(store: str | None) -> bool:
    """`ctsync backfill --confirm`: the backfill's plan totals, then ask before anything is written."""
    report = build_plan(store=store, force=True)
    console.print("a backfill would write:")
    print_totals(report.totals)
    return typer.confirm("Start the backfill?", default=False)
