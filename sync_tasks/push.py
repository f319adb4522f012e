"""The push step: executes a write plan against HubSpot.

Creates go through batch upsert on `ct_customer_id`, so a replay can never create a duplicate;
updates go by record id. New ids go into the id map, and fingerprints and written values are saved
only after HubSpot confirmed the write. Work still to do when a call is rate limited or fails
transiently stays in the plan, so the task retries only that.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync_tasks import company_links, rejected
from sync_tasks.associations import associate_pairs
from sync_tasks.batch_writer import Outcome, write
from sync_tasks.changes import ENTITY
from sync_tasks.constants import BATCH_LIMIT, Keys, email_hash
from sync_tasks.errors import BusyError, RetryableError
from sync_tasks.hubspot_client import HubSpotClient, trace_id
from sync_tasks.match import CONTACTS, CT_ID_PROPERTY
from sync_tasks.state import SyncState

log = logging.getLogger(__name__)

COMPANIES = "companies"
COMPANY_KEY = "ct_company_key"


# KEYS: versions hash. ARGV: HubSpot id, version. Claims when not older than the stored version.
_CLAIM_VERSION = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current > ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
STALE, CLAIMED, STALE_BASE, BUSY = 0, 1, 2, 3
WRITE_LOCK_MS = 60_000  # outlasts one batch write with its bisection; a killed worker's lock expires
BUSY_RETRY_SECONDS = 2.0
# KEYS: versions hash, written-generation hash, the contact's write lock.
# ARGV: HubSpot id, version, generation the plan was made against ('' = unknown), token, lock ms.
_CLAIM_UPDATE = """
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[4] then return 3 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and current > ARGV[2] then return 0 end
local gen = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
if ARGV[3] ~= '' and gen ~= ARGV[3] then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _trace_by_property(prop: str, traces: dict[str, str]) -> Callable[[dict[str, Any]], str | None]:
    """Upsert results carry the key property, not our trace id: map back through it."""
    return lambda result: traces.get(str(result.get("properties", {}).get(prop)))


def _trace_by_id(traces: dict[str, str]) -> Callable[[dict[str, Any]], str | None]:
    return lambda result: traces.get(str(result.get("id")))


def _chunks(items: list[dict[str, Any]], size: int = BATCH_LIMIT) -> list[list[dict[str, Any]]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class ContactPusher:
    def __init__(self, hubspot: HubSpotClient, state: SyncState, run_id: str | None, task: str,
                 attempts: int = 1, first_failure: float | None = None, defer_links: bool = False) -> None:
        self.hubspot = hubspot
        self.state = state
        self.run_id = run_id
        self.task = task
        self.attempts = attempts  # of this task, for DLQ entries
        self.first_failure = first_failure
        self.retry_error: RetryableError | None = None
        self._links: list[tuple[str, str]] = []  # (contact id, company key) to associate
        self.resync: list[str] = []  # commercetools ids to match and map again
        self.counts: Counter[str] = Counter()  # created/updated, counted when the chunk is done
        self._claim_version = state.r.register_script(_CLAIM_VERSION)
        self._claim = state.r.register_script(_CLAIM_UPDATE)
        self._unlock = state.r.register_script(_UNLOCK)
        self.replan: list[str] = []  # commercetools ids whose diff went stale: plan again, uncounted
        self._member_companies: list[tuple[list[str], str]] = []  # (customer ids, company key)
        # A backfill's first pass leaves its associations for full batches (company_links.py).
        self.defer_links = defer_links and run_id is not None
        self._contact_members: dict[str, list[str]] = {}  # contact id → its customer ids

    def push(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Write what `plan` holds; return the plan of what is left (empty when all is done).

        Records count as created/updated only once the whole chunk is done, companies included:
        whoever waits for a run (the CLI, a backfill of orders after customers) then finds every
        contact's company in place. Counts of a chunk that must be retried travel with what is left."""
        self.counts.update(plan.get("counts", {}))
        self._member_companies = [(list(m), str(k)) for m, k in plan.get("member_companies", [])]
        left_creates = self._creates(plan.get("creates", []))
        left_updates = self._updates(plan.get("updates", []))
        left_links = self._companies(plan)
        left = {"creates": left_creates["creates"], "updates": left_updates,
                "companies": plan.get("companies", {}) if left_links else {}, "links": left_links,
                # Which accounts belong to which company travels with the links still to make.
                "member_companies": self._member_companies if left_links else []}
        if left["creates"] or left["updates"] or left["links"]:
            left["counts"] = dict(self.counts)
        else:
            self.state.count(self.run_id, **self.counts)
        return left

    # -- contacts ------------------------------------------------------------------------------
    def _creates(self, entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        left: list[dict[str, Any]] = []
        for batch in _chunks(entries):
            by_trace = {trace_id(): e for e in batch}
            self._honour_intents(batch)
            # The key is sent as a property too: HubSpot echoes sent properties, so results map back.
            inputs = [{"id": e["key"], "properties": {**e["properties"], CT_ID_PROPERTY: e["key"]},
                       "objectWriteTraceId": t} for t, e in by_trace.items()]
            keys = {e["key"]: t for t, e in by_trace.items()}
            out = write(lambda xs: self.hubspot.batch_upsert(CONTACTS, CT_ID_PROPERTY, xs), inputs,
                        _trace_by_property(CT_ID_PROPERTY, keys))
            pipe, confirm = self._confirm_pipeline()
            claims: list[tuple[dict[str, Any], int]] = []  # (entry, index of its claim's reply)
            for trace, result in out.results.items():
                entry = by_trace[trace]
                self._confirmed(entry, str(result["id"]), {**entry["properties"], CT_ID_PROPERTY: entry["key"]},
                                confirm)
                claims.append((entry, len(pipe)))
                self._claim_version(keys=[Keys.source_version(CONTACTS)],
                                    args=[str(result["id"]), entry.get("version") or ""], client=pipe)
                self.counts["created" if result.get("new", True) else "updated"] += len(entry["record_ids"])
            replies = pipe.execute() if claims else []
            for entry, at in claims:
                if not replies[at]:
                    self.resync.extend(entry["record_ids"])  # upserted onto newer data: map again
            for trace in out.conflicts:
                # The e-mail already belongs to a contact (made by a form, or by a concurrent chunk
                # with another account of the same e-mail): match and map these records again, so
                # they are planned together with that contact's accounts.
                self.resync.extend(by_trace[trace]["record_ids"])
            self._failed(out, by_trace)
            left += [by_trace[t] for t in out.retry]
            self._note_retry(out)
        return {"creates": left}

    def _claim_updates(self, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Claim each contact for this push; returns (claimed, busy).

        Dropped: data older than what was already claimed for the contact (a redelivered or re-sent
        chain, slower than a newer one). Re-planned: a diff made against written values that have
        changed since (another push wrote in between; sending the diff would leave that push's values
        where ours differ from them). Busy: another plan holds the contact's write lock; retried."""
        claimed, busy = [], []
        pipe = self.state.r.pipeline(transaction=False)  # one round trip for the batch's claims
        for entry in entries:
            hs_id = entry["hs_id"]
            entry.setdefault("token", trace_id())  # plans made before tokens: a lock of this push's own
            self._claim(keys=[Keys.source_version(CONTACTS), Keys.written_generation(CONTACTS),
                              Keys.write_lock(CONTACTS, hs_id)],
                        args=[hs_id, entry.get("version") or "", entry.get("base") or "", entry["token"],
                              WRITE_LOCK_MS], client=pipe)
        for entry, verdict in zip(entries, pipe.execute() if entries else [], strict=True):
            if verdict == CLAIMED:
                claimed.append(entry)
            elif verdict == BUSY:
                busy.append(entry)
            elif verdict == STALE_BASE:
                log.info("push: records %s re-planned (their contact was written since the plan)",
                         entry["record_ids"])
                self.replan.extend(entry["record_ids"])
            else:
                log.info("push: skipped stale data for records %s (newer data was written)", entry["record_ids"])
                self.state.count(self.run_id, skipped=len(entry["record_ids"]))
        return claimed, busy

    def _release(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        pipe = self.state.r.pipeline(transaction=False)
        for entry in entries:
            self._unlock(keys=[Keys.write_lock(CONTACTS, entry["hs_id"])], args=[entry["token"]], client=pipe)
        pipe.execute()

    def _recheck_versions(self, entries: list[dict[str, Any]]) -> None:
        """After writing: if newer data was claimed while we wrote, our write may have landed last;
        match and map those records again so the newest values win."""
        if not entries:
            return
        versions = self.state.r.hmget(Keys.source_version(CONTACTS), [e["hs_id"] for e in entries])
        for entry, newest in zip(entries, versions, strict=True):
            if newest and newest > (entry.get("version") or ""):
                self.resync.extend(entry["record_ids"])

    def _updates(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries, left = self._claim_updates(entries)
        if left and self.retry_error is None:  # an error met by the creates stays the reason to retry
            self.retry_error = BusyError(f"hubspot: {len(left)} contacts are being written by another push",
                                         retry_after=BUSY_RETRY_SECONDS)
        retry: list[dict[str, Any]] = []
        try:
            retry = self._write_updates(entries)
        finally:
            # A write to retry may have landed (a dropped connection, a 502 after the write): its lock
            # stays with this plan, so no other plan diffs against values that may be out of date.
            # The retry takes it back by its token; a dead-lettered one expires.
            self._release([e for e in entries if not any(e is r for r in retry)])
        return left + retry

    def _write_updates(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        left: list[dict[str, Any]] = []
        for batch in _chunks(entries):
            by_trace = {trace_id(): e for e in batch}
            ids = {e["hs_id"]: t for t, e in by_trace.items()}
            inputs = [{"id": e["hs_id"], "properties": e["properties"], "objectWriteTraceId": t}
                      for t, e in by_trace.items()]
            out = write(lambda xs: self.hubspot.batch_update(CONTACTS, xs), inputs,
                        _trace_by_id(ids))
            pipe, confirm = self._confirm_pipeline()
            for trace, result in out.results.items():
                entry = by_trace[trace]
                self._confirmed(entry, str(result["id"]), entry["properties"], confirm)
                self.counts["updated"] += len(entry["record_ids"])
            if out.results:
                pipe.execute()
            self._recheck_versions([by_trace[t] for t in out.results])
            for trace in out.conflicts:
                # An update that collides on a unique value (an e-mail another contact has).
                out.failed[trace] = out.failed.get(trace) or _conflict_detail(out, trace)
            self._failed(out, by_trace)
            left += [by_trace[t] for t in out.retry]
            self._note_retry(out)
        return left

    def _honour_intents(self, batch: list[dict[str, Any]]) -> None:
        """Create-intent records: before an upsert, note which `ct_customer_id` it creates each
        e-mail's contact under; the note is cleared once the id map holds the contact. A replay after
        a crash in between (HubSpot wrote, Redis never heard) reuses the noted key, so it upserts the
        same record even when another account of the e-mail would now own the contact."""
        intents = self.state.create_intents(CONTACTS, [e["email"] for e in batch])
        for entry in batch:
            key = intents.get(entry["email"])
            if key and key != entry["key"] and key in entry["members"]:
                entry["key"] = key
        self.state.save_create_intents(CONTACTS, {e["email"]: e["key"] for e in batch})

    def _confirm_pipeline(self) -> tuple[Any, SyncState]:
        """One MULTI/EXEC for a batch's confirmations: the same commands in the same order as one
        round trip each, and each record's state lands whole (as `set_members` alone did before).
        Returns the pipeline and this push's state writing to it."""
        pipe = self.state.r.pipeline(transaction=True)
        return pipe, self.state.on_pipeline(pipe)

    def _confirmed(self, entry: dict[str, Any], hs_id: str, written: dict[str, str], state: SyncState) -> None:
        """Queue what HubSpot confirmed for `entry` on `state`'s pipeline; the caller executes it."""
        entry["hs_id"] = hs_id
        # The SyncState writers used here each issue one command, so on a pipeline they queue in order.
        pipe = state.r
        state.save_ids(CONTACTS, {rid: hs_id for rid in entry["members"]})
        if entry.get("key"):
            state.clear_create_intents(CONTACTS, [entry["email"]])  # the id map covers it from now on
        state.save_emails({entry["email"]: hs_id})
        # `SyncState.set_members` runs a pipeline of its own; its commands, queued here instead.
        members_key = Keys.email_members(email_hash(entry["email"]))
        pipe.delete(members_key)
        if entry["members"]:
            pipe.sadd(members_key, *entry["members"])
        state.save_written(CONTACTS, hs_id, written)
        state.save_fingerprints(ENTITY, entry["fingerprints"])
        if entry.get("company"):
            self._links.append((hs_id, entry["company"]))
            self._contact_members[hs_id] = list(entry["members"])
            self._member_companies.append((entry["members"], entry["company"]))

    def _failed(self, out: Outcome, by_trace: dict[str, dict[str, Any]]) -> None:
        for trace, detail in out.failed.items():
            entry = by_trace[trace]
            log.warning("hubspot rejected contact write for records %s: %s %s (correlationId %s)",
                        entry["record_ids"], detail.category, rejected.redact_text(detail.message[:200]),
                        detail.correlation_id)
            self.state.dead_letter(self.task, entry["record_ids"], {"properties": entry["properties"],
                                   "hs_id": entry.get("hs_id"), "key": entry.get("key")}, detail.as_record(),
                                   attempts=self.attempts, first_failure=self.first_failure)
            rejected.record(self.state.r, "hubspot", self.task, entry["record_ids"], {
                "properties": entry["properties"], "hs_id": entry.get("hs_id"), "key": entry.get("key")}, detail)
            self.state.count(self.run_id, failed=len(entry["record_ids"]))

    def _note_retry(self, out: Outcome) -> None:
        if out.retry:
            self.retry_error = out.retry_error or RetryableError("hubspot: some inputs must be retried")

    # -- companies -----------------------------------------------------------------------------
    def _companies(self, plan: dict[str, Any]) -> list[list[str]]:
        links = [(str(c), str(k)) for c, k in plan.get("links", [])] + self._links
        companies: dict[str, dict[str, str]] = plan.get("companies", {})
        if not links or self.retry_error:
            return [list(link) for link in links]
        keys = sorted({key for _, key in links})
        known = self.state.lookup_ids(COMPANIES, keys)
        missing = [companies.get(k, {"name": k, COMPANY_KEY: k}) for k in keys if k not in known]
        for batch in _chunks(missing):
            by_trace = {trace_id(): c for c in batch}
            traces = {c[COMPANY_KEY]: t for t, c in by_trace.items()}
            inputs = [{"id": c[COMPANY_KEY], "properties": c, "objectWriteTraceId": t} for t, c in by_trace.items()]
            out = write(lambda xs: self.hubspot.batch_upsert(COMPANIES, COMPANY_KEY, xs), inputs,
                        _trace_by_property(COMPANY_KEY, traces))
            for trace, result in out.results.items():
                known[by_trace[trace][COMPANY_KEY]] = str(result["id"])
            for trace, detail in out.failed.items():
                company = by_trace[trace]
                plan = {"companies": {company[COMPANY_KEY]: company},
                        "links": [[c, k] for c, k in links if k == company[COMPANY_KEY]]}
                self.state.dead_letter(self.task, [], {"company": company, "plan": plan}, detail.as_record(),
                                       self.attempts, self.first_failure, entity=COMPANIES)
                rejected.record(self.state.r, "hubspot", self.task, [company[COMPANY_KEY]], {"company": company},
                                detail, entity=COMPANIES)
            self._note_retry(out)
        self.state.save_ids(COMPANIES, {k: v for k, v in known.items()})
        # Orders find their company through their customer.
        by_customer = {m: known[key] for members, key in self._member_companies if key in known for m in members}
        if by_customer:
            self.state.r.hset(Keys.index("customer-company"), mapping=by_customer)
        pairs = [(contact, known[key]) for contact, key in links if key in known]
        known_pairs = self.state.known_associations(company_links.PAIR, pairs)  # one read, not one per pair
        new_pairs = [p for p in pairs if p not in known_pairs]
        if self.defer_links and self.run_id is not None:
            held = company_links.defer_links(self.state, self.run_id,
                                             [(c, k, self._contact_members.get(c, [])) for c, k in new_pairs])
            try:
                company_links.make_full_batches(self.state, self.hubspot, self.run_id, self.task, held)
            except RetryableError as exc:  # the pairs stay in the run's set for the next batch or its end
                log.info("push: deferred contact-company associations wait (%s)", exc)
            new_pairs = []
        for i in range(0, len(new_pairs), BATCH_LIMIT):
            try:
                done = associate_pairs(lambda part: self.hubspot.associate_default(CONTACTS, COMPANIES, part),
                                       new_pairs[i:i + BATCH_LIMIT])
            except RetryableError as exc:
                self.retry_error = exc
                return [[c, k] for c, k in links]
            self.state.save_associations(company_links.PAIR, done.made)
            if done.refused:
                # HubSpot refused pairs (e.g. "No company with ID … exists": deleted or merged in
                # HubSpot since we made it). Forget those companies' ids so the retry upserts them
                # again by key; if it keeps failing, the retries run out into the DLQ, never a loop.
                refused = {company for _, company in done.refused}
                stale = sorted({key for key, hs_id in known.items() if hs_id in refused})
                self.state.forget_ids(COMPANIES, stale)
                log.warning("push: contact-company association refused (%s); companies %s will be upserted again",
                            next(iter(done.refused.values())).message[:200], stale)
                self.retry_error = RetryableError(f"hubspot: association refused, companies {stale} re-made next try")
                return [[c, k] for c, k in links]
        # Links whose company failed permanently are dead-lettered above, not retried.
        return [[c, k] for c, k in links if k not in known] if self.retry_error else []


@dataclass
class PushResult:
    left: dict[str, Any] = field(default_factory=dict)  # work to retry; empty when all is done
    error: RetryableError | None = None  # what stopped the rest
    resync: list[str] = field(default_factory=list)  # record ids to match and map again
    replan: list[str] = field(default_factory=list)  # the same, after a stale diff (not a collision)


def push_plan(plan: dict[str, Any], hubspot: HubSpotClient, state: SyncState, run_id: str | None,
              task: str, attempts: int = 1, first_failure: float | None = None,
              defer_links: bool = False) -> PushResult:
    pusher = ContactPusher(hubspot, state, run_id, task, attempts, first_failure, defer_links)
    batches = sum(-(-len(plan.get(k) or []) // BATCH_LIMIT) for k in ("creates", "updates"))
    try:
        with hubspot.prepaid(batches):
            left = pusher.push(plan)
    except RetryableError as exc:  # refused before the first call: nothing was written
        return PushResult(dict(plan), exc, [])
    if not (left["creates"] or left["updates"] or left["links"]):
        return PushResult(resync=pusher.resync, replan=pusher.replan)
    return PushResult(left, pusher.retry_error or RetryableError("hubspot: work left after push"), pusher.resync,
                      pusher.replan)


def _conflict_detail(out: Outcome, trace: str) -> Any:
    from sync_tasks.errors import ErrorDetail

    return ErrorDetail(status=409, category="CONFLICT",
                       message=f"value already belongs to HubSpot record {out.conflicts[trace]}")
