"""Lifecycle events that fire once per person: first purchase, repeat purchase, churn risk and
subscription milestones (docs/lifecycle.md).

Events are computed from the person's order ledger (sync_tasks/ledger.py, keyed by the HubSpot
contact, so accounts sharing an e-mail count as one). Whether an event exists is decided by an atomic
claim in Redis (HSETNX of its key in `ctsync:lifecycle:{person}`) made *before* anything is written
to HubSpot; replays, retries, backfills, duplicated messages and concurrent workers all meet the
existing claim. A claim starts unsent; its HubSpot writes are idempotent (absolute property values
derived from all claims, custom events with a uuid5 of person and event key), so whoever finds it
unsent re-sends it until it is marked sent — a crash between claim and write is repaired by a retry.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync_tasks import custom_events
from sync_tasks.commerce_push import update_by_id
from sync_tasks.constants import Keys
from sync_tasks.errors import RetryableError
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.ledger import CANCELLED, Ledger, LedgerEntry
from sync_tasks.match import CONTACTS
from sync_tasks.redis_conn import hgetall_many
from sync_tasks.settings import CHURN_RISK, FIRST_PURCHASE, REPEAT_PURCHASE, SUBSCRIPTION_MILESTONE, Settings
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

HISTORICAL_MODES = frozenset({"backfill"})  # ctx["mode"] of runs that read history, not live orders
EVENT_PROPERTIES = ["event_key", "order_id", "number", "historical"]
DAY = 86400.0

# Claim every candidate whose key is free; the person joins the pending set in the same step.
# A historical claim is corrected (not won again) by a historical candidate of the same key on an
# earlier order: a backfill's chunks see a person's orders out of order, and the first chunk's
# "first purchase" may be their second order. Only the properties change (a historical event sends
# no custom event), so the corrected claim is unsent again. A live claim is never touched.
# KEYS: lifecycle hash, pending set. ARGV: person, then field/value pairs. Returns the fields won.
_CLAIM = """
local won = {}
local changed = false
for i = 2, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    won[#won + 1] = ARGV[i]
    changed = true
  else
    -- Every chunk re-evaluates all of a person's events: the stored claim is decoded only for a
    -- historical candidate (a delta's candidates are live and never move a claim).
    local new = cjson.decode(ARGV[i + 1])
    if new['historical'] then
      local old = cjson.decode(redis.call('HGET', KEYS[1], ARGV[i]))
      if old['historical'] and
          (new['at'] < old['at'] or (new['at'] == old['at'] and new['order_id'] < old['order_id'])) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        changed = true
      end
    end
  end
end
if changed then redis.call('SADD', KEYS[2], ARGV[1]) end
return won
"""

# Churn: claim only while the person's last order is still the one the scan judged; a new order in
# between moves the score and the claim is refused. KEYS: last-order zset, lifecycle hash, pending set.
# ARGV: person, expected score, field, value. Returns 1 when the claim was won.
_CLAIM_CHURN = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[4]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
  return 1
end
return 0
"""

# Mark a claim sent only if it is still the claim we sent (never resurrect or overwrite another).
_MARK_SENT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class LifecycleEvent:
    kind: str
    key: str  # the claim field: unique per person and occurrence
    at: str  # ISO instant the event refers to (the order's createdAt, or when churn risk began)
    order_id: str = ""
    number: int = 0  # repeat: the order count; milestone: the nth order of the subscription
    historical: bool = False
    fired_at: str = ""
    sent: bool = False

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> LifecycleEvent:
        return cls(**json.loads(raw))


@dataclass
class LifecycleResult:
    fired: list[tuple[str, LifecycleEvent]] = field(default_factory=list)  # (person, event) newly claimed
    sent: int = 0
    error: RetryableError | None = None


# -- pure functions -----------------------------------------------------------------------------------
def parse_instant(value: str) -> float:
    """ISO 8601 (commercetools' '...Z') → epoch seconds; ValueError names nothing, callers do."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def live_orders(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """Orders that count, oldest first: a cancelled order never counts (even if cancelled before sync)."""
    return sorted((e for e in entries if e.state != CANCELLED), key=lambda e: (e.created_at, e.order_id))


def subscription_of(order: dict[str, Any], settings: Settings) -> str:
    """The subscription an order belongs to: the configured custom field, else one series per person
    for orders commercetools created from a recurring order; '' for a one-off order."""
    fields = ((order.get("custom") or {}).get("fields")) or {}
    value = fields.get(settings.lifecycle_subscription_field)
    if value not in (None, ""):
        return str(value)
    return "recurring" if order.get("origin") == "RecurringOrder" else ""


def evaluate(entries: list[LedgerEntry], subscriptions: dict[str, str], settings: Settings,
             mode: str) -> list[LifecycleEvent]:
    """Every order-driven event the ledger implies (already fired or not: claims decide which are new).

    Evaluated on the ledger sorted by createdAt, so orders arriving out of order give the same events."""
    live = live_orders(entries)
    historical = mode in HISTORICAL_MODES
    out: list[LifecycleEvent] = []
    if live:
        out.append(LifecycleEvent(FIRST_PURCHASE, FIRST_PURCHASE, live[0].created_at, live[0].order_id, 1, historical))
    for n, entry in enumerate(live, 1):
        if n == 2 or (n > 2 and n % settings.lifecycle_repeat_every == 0):
            out.append(LifecycleEvent(REPEAT_PURCHASE, f"{REPEAT_PURCHASE}:{n}", entry.created_at, entry.order_id, n,
                                      historical))
    series: dict[str, list[LedgerEntry]] = {}
    for entry in live:
        sub = subscriptions.get(entry.order_id, "")
        if sub:
            series.setdefault(sub, []).append(entry)
    thresholds = set(settings.lifecycle_milestones)
    for sub, orders in sorted(series.items()):
        for n, entry in enumerate(orders, 1):
            if n in thresholds:
                out.append(LifecycleEvent(SUBSCRIPTION_MILESTONE, f"{SUBSCRIPTION_MILESTONE}:{sub}:{n}",
                                          entry.created_at, entry.order_id, n, historical))
    return out


def churn_days(settings: Settings, store: str) -> int:
    return settings.lifecycle_churn_days_by_store.get(store, settings.lifecycle_churn_days)


def churn_event(entries: list[LedgerEntry], first_seen: dict[str, float], settings: Settings,
                now: float) -> LifecycleEvent | None:
    """The churn-risk episode due now, if any: at least one order, and none for N days (N of the last
    order's store). The episode is keyed by the last order, so a new order opens a new one. It is
    historical when the person had already crossed the line when we first saw that last order
    (a backfill of old orders must not e-mail long-gone customers as if they had just left)."""
    live = live_orders(entries)
    if not live:
        return None
    last = live[-1]
    start = parse_instant(last.created_at) + churn_days(settings, last.store) * DAY
    if now < start:
        return None
    historical = start < first_seen.get(last.order_id, now)
    return LifecycleEvent(CHURN_RISK, f"{CHURN_RISK}:{last.created_at}", iso(start), last.order_id, len(live),
                          historical)


def contact_properties(claims: list[LifecycleEvent], entries: list[LedgerEntry],
                       settings: Settings) -> dict[str, str]:
    """Absolute contact property values derived from every claim: for each kind its latest occurrence
    (date, number, live flag, historical marker). The live flag is true only for an event fired live;
    churn's flag is true only while its episode is open (no order since). Kinds never fired are left out."""
    names = settings.lifecycle_property_names
    live = live_orders(entries)
    last_order = live[-1].created_at if live else ""
    out: dict[str, str] = {}
    for kind in (FIRST_PURCHASE, REPEAT_PURCHASE, SUBSCRIPTION_MILESTONE, CHURN_RISK):
        mine = [c for c in claims if c.kind == kind]
        if not mine:
            continue
        latest = max(mine, key=lambda c: (c.at, c.number, c.key))
        base = names[kind]
        flag = not latest.historical
        if kind == CHURN_RISK:
            flag = flag and latest.key == f"{CHURN_RISK}:{last_order}"
        out[f"{base}_date"] = latest.at
        out[base] = "true" if flag else "false"
        out[f"{base}_historical"] = "true" if latest.historical else "false"
        if kind in (REPEAT_PURCHASE, SUBSCRIPTION_MILESTONE):
            out[f"{base}_number"] = str(latest.number)
    return out


def property_specs(settings: Settings) -> list[tuple[str, str, str, str]]:
    """(name, label, type, fieldType) of every lifecycle contact property, for `ctsync setup`."""
    specs = []
    for kind, base in settings.lifecycle_property_names.items():
        label = kind.replace("_", " ")
        specs += [(base, f"{label} (live)", "bool", "booleancheckbox"),
                  (f"{base}_date", f"{label} date", "datetime", "date"),
                  (f"{base}_historical", f"{label} from history (backfill)", "bool", "booleancheckbox")]
        if kind in (REPEAT_PURCHASE, SUBSCRIPTION_MILESTONE):
            specs.append((f"{base}_number", f"{label} order number", "number", "number"))
    return specs


# -- Redis: the claims ---------------------------------------------------------------------------------
def _sorted_claims(raw: dict[str, str]) -> list[LifecycleEvent]:
    return sorted((LifecycleEvent.from_json(v) for v in raw.values()), key=lambda e: (e.at, e.key))


class LifecycleStore:
    def __init__(self, client: Any) -> None:
        self.r = client
        self._claim = client.register_script(_CLAIM)
        self._claim_churn = client.register_script(_CLAIM_CHURN)
        self._mark_sent = client.register_script(_MARK_SENT)

    def claims(self, person: str) -> list[LifecycleEvent]:
        return _sorted_claims(self.r.hgetall(Keys.lifecycle(person)))

    def claims_many(self, people: list[str]) -> dict[str, list[LifecycleEvent]]:
        """`claims` of each person in one round trip."""
        raws = hgetall_many(self.r, [Keys.lifecycle(p) for p in people])
        return {p: _sorted_claims(raw) for p, raw in zip(people, raws, strict=True)}

    def claim(self, person: str, events: list[LifecycleEvent], now: float) -> list[LifecycleEvent]:
        """Claim the events not claimed yet; returns those this call won (exactly one caller wins each)."""
        return self.claim_many({person: events}, now).get(person, [])

    def claim_many(self, events: dict[str, list[LifecycleEvent]], now: float) -> dict[str, list[LifecycleEvent]]:
        """`claim` for several people: their claims in one round trip, the counts in one more."""
        stamped = {person: {e.key: LifecycleEvent(**{**asdict(e), "fired_at": iso(now), "sent": False}) for e in es}
                   for person, es in events.items() if es}
        if not stamped:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for person, by_key in stamped.items():
            args: list[str] = [person]
            for key, event in by_key.items():
                args += [key, event.as_json()]
            self._claim(keys=[Keys.lifecycle(person), Keys.lifecycle_pending()], args=args, client=pipe)
        won = dict(zip(stamped, pipe.execute(), strict=True))
        winners = {person: [by_key[k.decode() if isinstance(k, bytes) else k] for k in won[person]]
                   for person, by_key in stamped.items()}
        self._count([e for es in winners.values() for e in es])
        return winners

    def claim_churn(self, person: str, score: float, event: LifecycleEvent, now: float) -> bool:
        value = LifecycleEvent(**{**asdict(event), "fired_at": iso(now), "sent": False})
        won = bool(self._claim_churn(keys=[Keys.lifecycle_last_order(), Keys.lifecycle(person),
                                           Keys.lifecycle_pending()],
                                     args=[person, repr(score), event.key, value.as_json()]))
        if won:
            self._count([value])
        return won

    def _count(self, events: list[LifecycleEvent]) -> None:
        counts = Counter(f"{e.kind}|{'historical' if e.historical else 'live'}" for e in events)
        if counts:
            pipe = self.r.pipeline(transaction=False)
            for field_, n in counts.items():
                pipe.hincrby(Keys.lifecycle_fired(), field_, n)
            pipe.execute()

    def mark_sent(self, person: str, events: list[LifecycleEvent]) -> None:
        self.mark_sent_many({person: events})

    def mark_sent_many(self, events: dict[str, list[LifecycleEvent]]) -> None:
        """Mark the events sent (each only if its claim is unchanged), then take the people with
        nothing left unsent off the pending set: three round trips for all of them."""
        people = [p for p, es in events.items() if es]
        if not people:
            return
        pipe = self.r.pipeline(transaction=False)
        for person in people:
            for e in events[person]:
                self._mark_sent(keys=[Keys.lifecycle(person)], client=pipe,
                                args=[e.key, e.as_json(), LifecycleEvent(**{**asdict(e), "sent": True}).as_json()])
        pipe.execute()
        done = [p for p, claims in self.claims_many(people).items() if all(c.sent for c in claims)]
        if done:
            self.r.srem(Keys.lifecycle_pending(), *done)

    def note_orders(self, person: str, orders: dict[str, str], now: float) -> None:
        """Remember each order's subscription and when we first saw it (HSETNX: replays keep the first)."""
        self.note_orders_many({person: orders}, now)

    def note_orders_many(self, people: dict[str, dict[str, str]], now: float) -> None:
        """`note_orders` for several people in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for person, orders in people.items():
            key = Keys.lifecycle_orders(person)
            for order_id, sub in orders.items():
                pipe.hsetnx(key, order_id, json.dumps({"sub": sub, "seen": now}))
        pipe.execute()

    def order_facts(self, person: str) -> tuple[dict[str, str], dict[str, float]]:
        return _facts(self.r.hgetall(Keys.lifecycle_orders(person)))

    def order_facts_many(self, people: list[str]) -> dict[str, tuple[dict[str, str], dict[str, float]]]:
        raws = hgetall_many(self.r, [Keys.lifecycle_orders(p) for p in people])
        return {p: _facts(raw) for p, raw in zip(people, raws, strict=True)}

    def track_last_order(self, person: str, entries: list[LedgerEntry]) -> None:
        """The churn index: person → last counted order (never moves back, so concurrent writers agree)."""
        self.track_last_order_many({person: entries})

    def track_last_order_many(self, people: dict[str, list[LedgerEntry]]) -> None:
        last: dict[str, float] = {}
        for person, entries in people.items():
            live = live_orders(entries)
            if not live:
                continue
            try:
                last[person] = parse_instant(live[-1].created_at)
            except ValueError:
                log.error("lifecycle: order %s has an unreadable createdAt %r; churn not tracked for person %s",
                          live[-1].order_id, live[-1].created_at, person)
        if last:
            self.r.zadd(Keys.lifecycle_last_order(), last, gt=True)  # GT: each member only moves forward


def _facts(raw: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    facts = {k: json.loads(v) for k, v in raw.items()}
    return {k: str(f.get("sub") or "") for k, f in facts.items()}, {k: float(f["seen"]) for k, f in facts.items()}


# -- HubSpot: sending claimed events ----------------------------------------------------------------
def event_name(hubspot: HubSpotClient, r: Any, settings: Settings, kind: str) -> str:
    cached = r.get(Keys.lifecycle_event_name(kind))
    if cached:
        return str(cached.decode() if isinstance(cached, bytes) else cached)
    name = custom_events.ensure_definition(hubspot, settings.lifecycle_event_names[kind],
                                           f"ctsync {kind.replace('_', ' ')}", EVENT_PROPERTIES)
    r.set(Keys.lifecycle_event_name(kind), name)
    return name


def occurrence(person: str, event: LifecycleEvent, name: str) -> dict[str, Any]:
    return {"eventName": name, "objectId": person, "occurredAt": event.at,
            "uuid": custom_events.event_uuid("lifecycle", person, event.key),
            "properties": {"event_key": event.key, "order_id": event.order_id, "number": str(event.number),
                           "historical": "true" if event.historical else "false"}}


def send_pending(hubspot: HubSpotClient, state: SyncState, settings: Settings, people: list[str],
                 task: str, run_id: str | None, extra: dict[str, dict[str, str]] | None = None,
                 only_changed: bool = True) -> tuple[int, RetryableError | None]:
    """Write the people's lifecycle properties (only what changed, unless `only_changed` is off) and
    send their unsent custom events; then mark those claims sent. Historical events set properties
    but send no custom event. `extra` holds other contact properties (the order rollups) to send in
    the same batch update."""
    store = LifecycleStore(state.r)
    unsent: dict[str, list[LifecycleEvent]] = {}
    values: dict[str, dict[str, str]] = {}
    # Two round trips for all of them, not two per person (a backfill's end sends 100 at a time).
    all_claims = store.claims_many(list(people))
    entries = Ledger(state.r).entries_many(list(people))
    for person in people:
        claims = all_claims[person]
        unsent[person] = [c for c in claims if not c.sent]
        values[person] = {**(extra or {}).get(person, {}), **contact_properties(claims, entries[person], settings)}
    if settings.lifecycle_custom_events:
        occurrences = [occurrence(p, e, event_name(hubspot, state.r, settings, e.kind))
                       for p, events in unsent.items() for e in events if not e.historical]
        custom_events.send(hubspot, occurrences)
    error = update_by_id(hubspot, state, CONTACTS, values, task, run_id, only_changed)
    if error:
        return 0, error
    store.mark_sent_many(unsent)
    return sum(len(v) for v in unsent.values()), None


# -- entry points ----------------------------------------------------------------------------------------
def on_recorded(hubspot: HubSpotClient, state: SyncState, settings: Settings, people: dict[str, list[str]],
                subscriptions: dict[str, str], mode: str, task: str, run_id: str | None,
                now: float | None = None, extra: dict[str, dict[str, str]] | None = None,
                send: bool = True) -> LifecycleResult:
    """After the ledger recorded orders: person → the order ids just recorded. Claims the events the
    ledger now implies, then sends whatever of the people's events is unsent (new or left by a crash).
    `send=False` claims only: a backfill sends once per person at its end (the claims stay pending,
    so the daily repair pass would send them if that end never came)."""
    now = datetime.now(UTC).timestamp() if now is None else now
    store = LifecycleStore(state.r)
    ledger = Ledger(state.r)
    result = LifecycleResult()
    # Per person the same steps in the same order (note, read, track, claim); each step for all of
    # them in one round trip. The shared keys (the churn index with GT) take order-free updates.
    everyone = sorted(people)
    store.note_orders_many({p: {o: subscriptions.get(o, "") for o in people[p]} for p in everyone}, now)
    ledgers = ledger.entries_many(everyone)
    store.track_last_order_many(ledgers)
    facts = store.order_facts_many(everyone)
    claimed = store.claim_many({p: evaluate(ledgers[p], facts[p][0], settings, mode) for p in everyone}, now)
    for person in everyone:
        for event in claimed.get(person, []):
            result.fired.append((person, event))
            # A backfill fires one historical event per order or so: those are counted (`ctsync
            # lifecycle`) and summed up below, not logged one by one.
            log.log(logging.DEBUG if event.historical else logging.INFO,
                    "lifecycle %s fired for contact %s (%s, order %s)", event.key, person,
                    "historical" if event.historical else "live", event.order_id)
    historical = sum(1 for _, e in result.fired if e.historical)
    if historical:
        log.info("lifecycle: %d historical events claimed for %d people", historical, len(everyone))
    if send:
        result.sent, result.error = send_pending(hubspot, state, settings, sorted(people), task, run_id, extra)
    return result


def scan_churn(hubspot: HubSpotClient, state: SyncState, settings: Settings, task: str,
               now: float | None = None, page: int = 1000) -> LifecycleResult:
    """The daily churn pass: people whose last order is older than the shortest N (a ZRANGEBYSCORE of
    the last-order index, not a scan of every person), judged with their own store's N; then a repair
    pass over everyone with unsent events."""
    now = datetime.now(UTC).timestamp() if now is None else now
    store = LifecycleStore(state.r)
    ledger = Ledger(state.r)
    shortest = min([settings.lifecycle_churn_days, *settings.lifecycle_churn_days_by_store.values()])
    result = LifecycleResult()
    offset = 0
    while True:
        batch = state.r.zrangebyscore(Keys.lifecycle_last_order(), "-inf", now - shortest * DAY,
                                      start=offset, num=page, withscores=True)
        if not batch:
            break
        kept = 0
        for raw_person, score in batch:
            person = raw_person.decode() if isinstance(raw_person, bytes) else str(raw_person)
            _, seen = store.order_facts(person)
            event = churn_event(ledger.entries(person), seen, settings, now)
            if event is None:
                kept += 1  # this store's N is longer: stays in the index for a later day
                continue
            if store.claim_churn(person, score, event, now):
                result.fired.append((person, event))
                log.info("lifecycle %s fired for contact %s (%s)", event.key, person,
                         "historical" if event.historical else "live")
        offset += kept  # claimed people left the index; the ones kept are skipped on the next page
        if len(batch) < page:
            break
    pending = sorted(m.decode() if isinstance(m, bytes) else str(m)
                     for m in state.r.smembers(Keys.lifecycle_pending()))
    for i in range(0, len(pending), 100):
        sent, error = send_pending(hubspot, state, settings, pending[i:i + 100], task, None)
        result.sent += sent
        if error:
            result.error = error
            break
    return result


def show(r: Any, person: str) -> dict[str, Any]:
    """A person's ledger and lifecycle events, for `ctsync lifecycle show`."""
    store = LifecycleStore(r)
    subs, seen = store.order_facts(person)
    score = r.zscore(Keys.lifecycle_last_order(), person)
    return {
        "person": person,
        "orders": [{**asdict(e), "subscription": subs.get(e.order_id, ""),
                    "first_seen": iso(seen[e.order_id]) if e.order_id in seen else ""}
                   for e in Ledger(r).entries(person)],
        "events": [asdict(e) for e in store.claims(person)],
        "churn_index": iso(float(score)) if score is not None else "",
    }
