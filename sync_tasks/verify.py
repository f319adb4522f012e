"""End-to-end check against the sandboxes: every commercetools customer with an e-mail has exactly
one HubSpot contact, carrying the values the sync should have written. Used by `make demo` and the
end-to-end tests; it reads HubSpot through the sandbox's `/_sandbox/` inspection API."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from sync_tasks.changes import pick_owner
from sync_tasks.commercetools_client import CommercetoolsClient
from sync_tasks.mapping import map_customer, normalize_email
from sync_tasks.pagination import KeysetPaginator


@dataclass
class VerifyReport:
    customers: int = 0
    people: int = 0
    contacts: int = 0
    missing: list[str] = field(default_factory=list)  # customer ids without a contact
    duplicates: list[str] = field(default_factory=list)  # contact ids sharing one e-mail
    mismatched: list[str] = field(default_factory=list)  # "customer id: property"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.mismatched)


def all_customers(ct: CommercetoolsClient) -> list[dict[str, Any]]:
    return [c for page in KeysetPaginator(ct, "customers", expand=["customerGroup"]) for c in page]


def sandbox_records(hubspot_url: str, obj: str) -> list[dict[str, Any]]:
    body = requests.get(f"{hubspot_url}/_sandbox/objects/{obj}", timeout=120).json()
    records = body.get("results", body) if isinstance(body, dict) else body
    return [r for r in records if not r.get("archived")]


def verify_contacts(ct: CommercetoolsClient, hubspot_url: str, rule: str,
                    ignore: tuple[str, ...] = ("ct_last_modified_at",)) -> VerifyReport:
    customers = all_customers(ct)
    report = VerifyReport(customers=len(customers))
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in customers:
        email = normalize_email(c.get("email"))
        if email:
            groups[email].append(c)
    report.people = len(groups)
    contacts = sandbox_records(hubspot_url, "contacts")
    report.contacts = len(contacts)
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for contact in contacts:
        email = normalize_email(contact.get("properties", {}).get("email"))
        if email:
            by_email[email].append(contact)
    for email, group in groups.items():
        found = by_email.get(email, [])
        if not found:
            report.missing += [c["id"] for c in group]
            continue
        if len(found) > 1:
            report.duplicates += [str(x["id"]) for x in found]
        props = found[0].get("properties", {})
        owner = pick_owner(rule, group)
        with _quiet_mapping():  # the sync already warned about these values; the check needn't repeat it
            expected = dict(map_customer(owner).properties)
        expected["ct_customer_ids"] = ";".join(sorted(c["id"] for c in group))
        for name, value in expected.items():
            if name in ignore:
                continue
            if (props.get(name) or "") != (value or ""):
                report.mismatched.append(f"{owner['id']}: {name}")
    return report


@contextlib.contextmanager
def _quiet_mapping() -> Iterator[None]:
    logger = logging.getLogger("sync_tasks.mapping")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
