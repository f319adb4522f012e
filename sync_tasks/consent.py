"""Consent: commercetools opt-in fields → HubSpot communication preferences (v4), per subscription.

Rules (marketing trusts consent only if it is exact):
- An opt-out in commercetools always unsubscribes.
- The sync never re-subscribes someone HubSpot shows as opted out, unless the mapping says
  `resubscribe_if_newer` and the commercetools opt-in date is newer than that opt-out.
- No opt-in field (None) changes nothing: the sync never writes NOT_SPECIFIED.
- Consent writes are logged with the record id, never the e-mail.

Several accounts sharing an e-mail are one person: the account changed last that has an opt-in
value decides. The map step plans a consent entry only when that decision changed since the sync
last applied it (a fingerprint per e-mail in Redis); the push task applies it after the contacts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync_tasks import transforms as tf
from sync_tasks.constants import Keys, email_hash
from sync_tasks.errors import PermanentError, RetryableError
from sync_tasks.mapping import fingerprint
from sync_tasks.mapping_file import ConsentSpec, Subscription

log = logging.getLogger(__name__)

SUBSCRIBED, UNSUBSCRIBED, NOT_SPECIFIED = "SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"


class ConsentClient(Protocol):
    def consent_statuses(self, email: str) -> list[dict[str, Any]]: ...

    def set_consent(self, email: str, body: dict[str, Any]) -> Any: ...


def read_opt_in(record: dict[str, Any], spec: ConsentSpec) -> tuple[bool | None, str | None]:
    """(opt-in, its date) from one commercetools record; None when the field is absent or odd."""
    if not spec.opt_in:
        return None, None
    try:
        value = tf.boolean(tf.get_path(record, spec.opt_in))
    except tf.Rejected:
        value = None
    try:
        when = tf.datetime(tf.get_path(record, spec.opt_in_date)) if spec.opt_in_date else None
    except tf.Rejected:
        when = None
    return (None if value is None else value == "true"), when


def intent(email: str, records: list[dict[str, Any]], spec: ConsentSpec) -> dict[str, Any] | None:
    """The consent entry for one person, or None when consent is off or no account says anything."""
    if not spec.enabled:
        return None
    decided = [(r, *read_opt_in(r, spec)) for r in records]
    decided = [d for d in decided if d[1] is not None]
    if not decided:
        return None
    record, opt_in, when = max(decided, key=lambda d: (d[0].get("lastModifiedAt") or "", d[0]["id"]))
    entry = {"key": email_hash(email), "email": email, "record_id": record["id"], "opt_in": opt_in,
             "opt_in_date": when}
    entry["fingerprint"] = fingerprint({"opt_in": str(opt_in), "date": when or "",
                                        "subs": ",".join(s.subscription_id for s in spec.subscriptions)})
    return entry


def _instant(value: Any) -> dt.datetime | None:
    try:
        text = tf.datetime(value)
    except tf.Rejected:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class Decision:
    subscription: Subscription
    state: str | None  # the status to write; None: leave HubSpot as it is
    reason: str


def decide(entry: dict[str, Any], current: dict[str, dict[str, Any]], spec: ConsentSpec) -> list[Decision]:
    """What to write per subscription, given HubSpot's current statuses (by subscription id)."""
    out = []
    for sub in spec.subscriptions:
        status = current.get(sub.subscription_id) or {}
        now = str(status.get("status") or NOT_SPECIFIED)
        if not entry["opt_in"]:
            out.append(Decision(sub, None if now == UNSUBSCRIBED else UNSUBSCRIBED, "opt-out in commercetools"))
            continue
        if now == SUBSCRIBED:
            out.append(Decision(sub, None, "already subscribed"))
        elif now != UNSUBSCRIBED:
            out.append(Decision(sub, SUBSCRIBED, "opt-in in commercetools"))
        else:
            opt_in, opt_out = _instant(entry.get("opt_in_date")), _instant(status.get("timestamp"))
            if spec.resubscribe_if_newer and opt_in and opt_out and opt_in > opt_out:
                out.append(Decision(sub, SUBSCRIBED, "opt-in newer than HubSpot's opt-out"))
            else:
                out.append(Decision(sub, None, "HubSpot shows an opt-out; not re-subscribed"))
    return out


def body(decision: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {"subscriptionId": decision.subscription.subscription_id, "statusState": decision.state,
                           "channel": "EMAIL"}
    if decision.state == SUBSCRIBED:
        out["legalBasis"] = decision.subscription.legal_basis
        out["legalBasisExplanation"] = decision.subscription.explanation
    return out


def current_statuses(client: ConsentClient, email: str) -> dict[str, dict[str, Any]]:
    return {str(s.get("subscriptionId")): s for s in client.consent_statuses(email)}


def pending(r: Any, entries: list[dict[str, Any]], force: bool = False) -> list[dict[str, Any]]:
    """The entries whose decision differs from the one last applied (all of them when `force`)."""
    if not entries or force:
        return entries
    applied = r.hmget(Keys.consent(), [e["key"] for e in entries])
    return [e for e, fp in zip(entries, applied, strict=True) if fp != e["fingerprint"]]


@dataclass
class ConsentResult:
    left: list[dict[str, Any]] = field(default_factory=list)
    error: RetryableError | None = None
    written: int = 0
    failed: list[str] = field(default_factory=list)  # record ids dead-lettered


def push_consent(entries: list[dict[str, Any]], client: ConsentClient, state: Any, spec: ConsentSpec,
                 task: str = "consent") -> ConsentResult:
    """Apply consent entries in order; stop at the first transient failure and return the rest."""
    result = ConsentResult()
    for i, entry in enumerate(entries):
        try:
            current = current_statuses(client, entry["email"])
            for decision in decide(entry, current, spec):
                if decision.state is None:
                    log.info("consent: record %s subscription %s unchanged (%s)", entry["record_id"],
                             decision.subscription.subscription_id, decision.reason)
                    continue
                client.set_consent(entry["email"], body(decision))
                result.written += 1
                log.info("consent: record %s subscription %s → %s (%s)", entry["record_id"],
                         decision.subscription.subscription_id, decision.state, decision.reason)
        except RetryableError as exc:
            result.left, result.error = entries[i:], exc
            return result
        except PermanentError as exc:
            detail = exc.detail.as_dict() if exc.detail else {"message": str(exc)}
            log.warning("consent: record %s rejected by HubSpot: %s", entry["record_id"], detail.get("message"))
            state.dead_letter(task, [entry["record_id"]], {"consent": {k: v for k, v in entry.items() if k != "email"}},
                              detail, attempts=1)
            result.failed.append(entry["record_id"])
            continue
        state.r.hset(Keys.consent(), entry["key"], entry["fingerprint"])
    return result
