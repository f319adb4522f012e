"""The sync's durable state in Redis: id maps, the email index, fingerprints, the values last
written, run counters and the dead-letter stream. Key layout: `constants.Keys`."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from sync_tasks.constants import Keys, email_hash
from sync_tasks.errors import json_dumps

RUN_FIELDS = ("extracted", "matched", "created", "updated", "skipped", "failed")
ROLLUPS_PENDING = "pending"  # run field `rollups`: an order backfill's deferred rollups not yet written
LINKS_PENDING = "pending"  # run field `links`: a customer backfill's contact-company pairs not all made
LINKS_MADE = "made"
RUN_TTL_SECONDS = 14 * 24 * 3600
DLQ_MAXLEN = 100_000
CREATE_INTENT_TTL_SECONDS = 14 * 24 * 3600  # outlives any retry or DLQ replay window

# KEYS: written hash, generation hash. ARGV: HubSpot id, JSON object of properties to merge.
_MERGE_WRITTEN = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local merged = old and cjson.decode(old) or {}
for k, v in pairs(cjson.decode(ARGV[2])) do merged[k] = v end
if next(merged) == nil then redis.call('HSET', KEYS[1], ARGV[1], '{}')
else redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(merged)) end
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""

# KEYS: e-mail member sets. Each set's members, in KEYS order.
_MEMBERS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('SMEMBERS', key) end
return out
"""


class SyncState:
    def __init__(self, client: redis.Redis) -> None:
        # Typed loosely: redis-py's stubs type replies as bytes | str whatever decode_responses says.
        self.r: Any = client
        self._members_script: Any = None

    def on_pipeline(self, pipe: Any) -> SyncState:
        """This state (same class, so a read-only state stays read-only) writing to `pipe`: its
        one-command writers queue there in order, and the caller executes the pipeline."""
        queued = copy.copy(self)
        queued.r = pipe
        return queued

    # -- id maps -------------------------------------------------------------------------------
    def lookup_ids(self, hs_object: str, ct_ids: list[str]) -> dict[str, str]:
        if not ct_ids:
            return {}
        values = self.r.hmget(Keys.idmap(hs_object), ct_ids)
        return {k: v for k, v in zip(ct_ids, values, strict=True) if v}

    def save_ids(self, hs_object: str, mapping: Mapping[str, str]) -> None:
        if mapping:
            self.r.hset(Keys.idmap(hs_object), mapping=dict(mapping))

    def forget_ids(self, hs_object: str, ct_ids: Iterable[str]) -> None:
        ids = list(ct_ids)
        if ids:
            self.r.hdel(Keys.idmap(hs_object), *ids)

    def lookup_emails(self, emails: list[str]) -> dict[str, str]:
        if not emails:
            return {}
        values = self.r.hmget(Keys.email_index(), [email_hash(e) for e in emails])
        return {e: v for e, v in zip(emails, values, strict=True) if v}

    def save_emails(self, mapping: Mapping[str, str]) -> None:
        if mapping:
            self.r.hset(Keys.email_index(), mapping={email_hash(e): v for e, v in mapping.items()})

    # -- e-mail groups (several commercetools customers, one contact) -----------------------------
    def members(self, emails: list[str]) -> dict[str, set[str]]:
        if not emails:
            return {}
        # One script call for the chunk's ~100 sets: a pipeline packs and parses one command each.
        if self._members_script is None:
            self._members_script = self.r.register_script(_MEMBERS)
        keys = [Keys.email_members(email_hash(e)) for e in emails]
        return {e: set(m) for e, m in zip(emails, self._members_script(keys=keys), strict=True)}

    def set_members(self, groups: Mapping[str, Iterable[str]]) -> None:
        """Replace each e-mail's account set with the one just computed from commercetools."""
        pipe = self.r.pipeline(transaction=True)
        for email, ids in groups.items():
            key = Keys.email_members(email_hash(email))
            pipe.delete(key)
            ids = list(ids)
            if ids:
                pipe.sadd(key, *ids)
        pipe.execute()

    # -- change detection ----------------------------------------------------------------------
    def fingerprints(self, entity: str, ct_ids: list[str]) -> dict[str, str]:
        if not ct_ids:
            return {}
        values = self.r.hmget(Keys.fingerprints(entity), ct_ids)
        return {k: v for k, v in zip(ct_ids, values, strict=True) if v}

    def save_fingerprints(self, entity: str, fps: Mapping[str, str]) -> None:
        if fps:
            self.r.hset(Keys.fingerprints(entity), mapping=dict(fps))

    def written(self, hs_object: str, hs_ids: list[str]) -> dict[str, dict[str, str]]:
        if not hs_ids:
            return {}
        values = self.r.hmget(Keys.written(hs_object), hs_ids)
        return {k: json.loads(v) for k, v in zip(hs_ids, values, strict=True) if v}

    def written_with_generations(self, hs_object: str, hs_ids: list[str]
                                 ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """What we last wrote to each record and its generation, read as one snapshot: a diff made
        against these values is valid while the generation stays the same (push.py checks)."""
        if not hs_ids:
            return {}, {}
        pipe = self.r.pipeline(transaction=True)
        pipe.hmget(Keys.written(hs_object), hs_ids)
        pipe.hmget(Keys.written_generation(hs_object), hs_ids)
        values, gens = pipe.execute()
        written = {k: json.loads(v) for k, v in zip(hs_ids, values, strict=True) if v}
        return written, {k: str(g or "0") for k, g in zip(hs_ids, gens, strict=True)}

    def written_raw_with_generations(self, hs_object: str, hs_ids: list[str], values_for: list[str] | None = None
                                     ) -> tuple[dict[str, str], dict[str, str]]:
        """`written_with_generations` with the values left as stored JSON, and read only for
        `values_for` (default: all of `hs_ids`): the map step parses the few it needs, not every one."""
        if not hs_ids:
            return {}, {}
        wanted = hs_ids if values_for is None else values_for
        raw: dict[str, str] = {}
        if wanted:
            pipe = self.r.pipeline(transaction=True)
            pipe.hmget(Keys.written(hs_object), wanted)
            pipe.hmget(Keys.written_generation(hs_object), hs_ids)
            values, gens = pipe.execute()
            raw = {k: v for k, v in zip(wanted, values, strict=True) if v}
        else:
            gens = self.r.hmget(Keys.written_generation(hs_object), hs_ids)  # one command: a snapshot already
        return raw, {k: str(g or "0") for k, g in zip(hs_ids, gens, strict=True)}

    def save_written(self, hs_object: str, hs_id: str, properties: Mapping[str, str]) -> None:
        """Merge `properties` into what we last wrote to `hs_id` and bump its generation, atomically."""
        self.r.eval(_MERGE_WRITTEN, 2, Keys.written(hs_object), Keys.written_generation(hs_object), hs_id,
                    json_dumps(dict(properties)))

    # -- associations already made ---------------------------------------------------------------
    def known_associations(self, pair: str, links: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if not links:
            return set()
        flags = self.r.smismember(Keys.associations(pair), [f"{a}:{b}" for a, b in links])
        return {link for link, flag in zip(links, flags, strict=True) if flag}

    def save_associations(self, pair: str, links: Iterable[tuple[str, str]]) -> None:
        values = [f"{a}:{b}" for a, b in links]
        if values:
            self.r.sadd(Keys.associations(pair), *values)

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, entity: str, mode: str, run_id: str | None = None, **meta: Any) -> str:
        run_id = run_id or f"{entity}-{mode}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        key = Keys.run(run_id)
        if not self.r.exists(key):
            fields: dict[str, Any] = {f: 0 for f in RUN_FIELDS}
            fields.update({"entity": entity, "mode": mode, "started_at": time.time(), "extract_done": 0,
                           **{k: json_dumps(v) for k, v in meta.items()}})
            pipe = self.r.pipeline()
            pipe.hset(key, mapping=fields)
            pipe.expire(key, RUN_TTL_SECONDS)
            pipe.lpush(Keys.runs(entity), run_id)
            pipe.ltrim(Keys.runs(entity), 0, 99)
            pipe.execute()
        return run_id

    def count(self, run_id: str | None, **deltas: int) -> None:
        if not run_id:
            return
        pipe = self.r.pipeline(transaction=False)
        for name, n in deltas.items():
            if n:
                pipe.hincrby(Keys.run(run_id), name, n)
        pipe.execute()

    def touch_run(self, run_id: str) -> None:
        """A backfill's paging made progress (the reconciler tells a stalled backfill by this)."""
        self.r.hset(Keys.run(run_id), "paged_at", time.time())

    def finish_extract(self, run_id: str) -> None:
        self.r.hset(Keys.run(run_id), mapping={"extract_done": 1, "extract_finished_at": time.time()})

    def run(self, run_id: str) -> dict[str, Any]:
        raw = self.r.hgetall(Keys.run(run_id))
        out: dict[str, Any] = dict(raw)
        for name in (*RUN_FIELDS, "extract_done"):
            out[name] = int(out.get(name, 0))
        return out

    @staticmethod
    def records_done(run: dict[str, Any]) -> bool:
        """Every extracted record of the run (`run(run_id)`) created, updated, skipped or failed."""
        done = sum(run[f] for f in ("created", "updated", "skipped", "failed"))
        return bool(run["extract_done"]) and done >= run["extracted"]

    def run_complete(self, run_id: str) -> bool:
        """Records done and what a backfill leaves for its end made: an order backfill's rollups, a
        customer backfill's contact-company associations (sync_tasks/company_links.py)."""
        run = self.run(run_id)
        return self.records_done(run) and run.get("rollups") != ROLLUPS_PENDING and run.get("links") != LINKS_PENDING

    def recent_runs(self, entity: str, n: int = 10) -> list[str]:
        return list(self.r.lrange(Keys.runs(entity), 0, n - 1))

    # -- create intents (HubSpot wrote, the id map not yet) ----------------------------------------
    def create_intents(self, hs_object: str, emails: list[str]) -> dict[str, str]:
        """E-mail → the `ct_customer_id` an unfinished create used for it."""
        if not emails:
            return {}
        values = self.r.mget([Keys.create_intent(hs_object, email_hash(e)) for e in emails])
        return {e: v for e, v in zip(emails, values, strict=True) if v}

    def save_create_intents(self, hs_object: str, keys: Mapping[str, str]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for email, key in keys.items():
            pipe.set(Keys.create_intent(hs_object, email_hash(email)), key, ex=CREATE_INTENT_TTL_SECONDS)
        pipe.execute()

    def clear_create_intents(self, hs_object: str, emails: Iterable[str]) -> None:
        keys = [Keys.create_intent(hs_object, email_hash(e)) for e in emails]
        if keys:
            self.r.delete(*keys)

    # -- dead letters --------------------------------------------------------------------------
    def dead_letter(self, task: str, record_ids: list[str], payload: Any, error: dict[str, Any],
                    attempts: int, first_failure: float | None = None, kind: str = "permanent",
                    entity: str = "customers", maxlen: int = DLQ_MAXLEN) -> str:
        """One DLQ entry (fields: `sync_tasks.dlq.DlqEntry`). `kind`: permanent | exhausted."""
        now = time.time()
        entry = {
            "task": task, "entity": entity, "kind": kind, "record_ids": json_dumps(record_ids),
            "payload": json_dumps(payload), "error": json_dumps(error), "attempts": attempts,
            "first_failure": first_failure or now, "last_failure": now,
        }
        return str(self.r.xadd(Keys.dlq(), entry, maxlen=maxlen, approximate=True))

    def dlq_size(self) -> int:
        return int(self.r.xlen(Keys.dlq()))

    def dlq_entries(self, count: int = 100) -> list[tuple[str, dict[str, Any]]]:
        return list(self.r.xrange(Keys.dlq(), count=count))
