"""Consent rules: an opt-out always unsubscribes; an opt-out HubSpot shows is kept unless the mapping
allows a newer opt-in; nothing is written without an opt-in value; logs carry record ids only."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from sync_tasks.consent import decide, intent, pending, push_consent
from sync_tasks.constants import Keys
from sync_tasks.errors import ErrorDetail, RetryableError
from sync_tasks.mapping_file import ConsentSpec
from sync_tasks.state import SyncState

SPEC = ConsentSpec(enabled=True, opt_in="custom.fields.newsletter", opt_in_date="custom.fields.newsletterOptInDate",
                   resubscribe_if_newer=True,
                   subscriptions=[{"subscription_id": "101", "explanation": "shop opt-in"}])  # type: ignore[list-item]
STRICT = SPEC.model_copy(update={"resubscribe_if_newer": False})


def customer(cid: str, opted: bool | None, date: str | None = None, modified: str = "2026-01-01T00:00:00.000Z"
             ) -> dict[str, Any]:
    fields: dict[str, Any] = {} if opted is None else {"newsletter": opted}
    if date:
        fields["newsletterOptInDate"] = date
    return {"id": cid, "lastModifiedAt": modified, "custom": {"fields": fields}}


def status(state: str, ts: str | None = "2025-06-01T00:00:00.000Z") -> dict[str, dict[str, Any]]:
    return {"101": {"subscriptionId": 101, "status": state, "timestamp": ts}}


def one(entry: dict[str, Any] | None, current: dict[str, dict[str, Any]], spec: ConsentSpec = SPEC) -> str | None:
    assert entry is not None
    [d] = decide(entry, current, spec)
    return d.state


def test_opt_out_always_unsubscribes() -> None:
    entry = intent("a@x.io", [customer("a", False)], SPEC)
    assert one(entry, status("SUBSCRIBED")) == "UNSUBSCRIBED"
    assert one(entry, status("NOT_SPECIFIED", None)) == "UNSUBSCRIBED"
    assert one(entry, status("UNSUBSCRIBED")) is None  # already: nothing to write


def test_opt_in_subscribes_unless_hubspot_shows_an_opt_out() -> None:
    entry = intent("a@x.io", [customer("a", True, "2025-01-01T00:00:00.000Z")], SPEC)
    assert one(entry, status("NOT_SPECIFIED", None)) == "SUBSCRIBED"
    assert one(entry, status("SUBSCRIBED")) is None
    assert one(entry, status("UNSUBSCRIBED", "2025-06-01T00:00:00.000Z")) is None  # opt-in older than opt-out
    newer = intent("a@x.io", [customer("a", True, "2025-07-01T00:00:00.000Z")], SPEC)
    assert one(newer, status("UNSUBSCRIBED", "2025-06-01T00:00:00.000Z")) == "SUBSCRIBED"
    assert one(newer, status("UNSUBSCRIBED", "2025-06-01T00:00:00.000Z"), STRICT) is None  # the mapping says no
    undated = intent("a@x.io", [customer("a", True)], SPEC)
    assert one(undated, status("UNSUBSCRIBED")) is None  # not provably newer


def test_no_opt_in_value_means_no_entry_and_the_latest_account_decides() -> None:
    assert intent("a@x.io", [customer("a", None)], SPEC) is None
    assert intent("a@x.io", [customer("a", True)], SPEC.model_copy(update={"enabled": False})) is None
    old = customer("a", True, modified="2025-01-01T00:00:00.000Z")
    new = customer("b", False, modified="2026-01-01T00:00:00.000Z")
    entry = intent("a@x.io", [old, new, customer("c", None, modified="2027-01-01T00:00:00.000Z")], SPEC)
    assert entry is not None and entry["record_id"] == "b" and entry["opt_in"] is False


def test_a_consent_entry_needs_opt_in_and_subscriptions() -> None:
    with pytest.raises(ValueError, match="opt_in"):
        ConsentSpec(enabled=True)


class FakePrefs:
    def __init__(self, fail_on: int | None = None) -> None:
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls = 0
        self.fail_on = fail_on

    def consent_statuses(self, email: str) -> list[dict[str, Any]]:
        self._count()
        return list(self.statuses.get(email, {}).values())

    def set_consent(self, email: str, body: dict[str, Any]) -> Any:
        self._count()
        self.statuses.setdefault(email, {})[body["subscriptionId"]] = {
            "subscriptionId": body["subscriptionId"], "status": body["statusState"],
            "timestamp": "2026-01-01T00:00:00.000Z", "legalBasis": body.get("legalBasis")}

    def _count(self) -> None:
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RetryableError("hubspot 503", ErrorDetail(status=503))


def test_push_applies_records_the_decision_and_logs_no_email(redis_client: redis.Redis,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    state = SyncState(redis_client)
    entries = [e for e in (intent(f"p{i}@x.io", [customer(f"c{i}", i % 2 == 0, "2025-01-01T00:00:00.000Z")], SPEC)
                           for i in range(3)) if e]
    prefs = FakePrefs(fail_on=4)  # the second person's first write fails transiently
    caplog.set_level(logging.INFO, logger="sync_tasks.consent")
    result = push_consent(entries, prefs, state, SPEC)
    assert result.error is not None and [e["record_id"] for e in result.left] == ["c1", "c2"]
    assert pending(redis_client, entries) == entries[1:]  # only the applied one is remembered
    result = push_consent(result.left, prefs, state, SPEC)
    assert result.error is None and result.written == 2
    assert prefs.statuses["p0@x.io"]["101"]["status"] == "SUBSCRIBED"
    assert prefs.statuses["p0@x.io"]["101"]["legalBasis"] == "CONSENT_WITH_NOTICE"
    assert prefs.statuses["p1@x.io"]["101"]["status"] == "UNSUBSCRIBED"
    assert pending(redis_client, entries) == [] and redis_client.hlen(Keys.consent()) == 3
    assert "record c1" in caplog.text and "@x.io" not in caplog.text
