"""Queue names, task names and the Redis key layout: defined here and nowhere else."""

from __future__ import annotations

import hashlib
from enum import StrEnum

# HubSpot's documented caps (hubspot-api.md §1): inputs per batch call of CRM objects, and per
# associations v4 batch create / associate-default call. Settings size the order chains by them.
BATCH_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 2_000


class Queue(StrEnum):
    EXTRACT = "ctsync.extract"  # beat-driven delta extraction and backfill paging
    SYNC = "ctsync.sync"  # match and map: CPU and reads, never rate-limited tasks
    PUSH = "ctsync.push"  # live HubSpot writes
    PUSH_BACKFILL = "ctsync.push.backfill"  # backfill writes: same budget, lower priority
    DEADLETTER = "ctsync.deadletter"  # never consumed by a worker; a Redis stream holds the DLQ


class TaskName(StrEnum):
    EXTRACT = "ctsync.extract"
    BACKFILL = "ctsync.backfill"
    MATCH = "ctsync.match"
    MAP = "ctsync.map"
    PUSH = "ctsync.push"
    RESYNC = "ctsync.resync"
    JOINS = "ctsync.joins"
    LINKS = "ctsync.links"
    RECONCILE = "ctsync.reconcile"
    ORDER_MATCH = "ctsync.orders.match"
    ORDER_MAP = "ctsync.orders.map"
    ORDER_PUSH = "ctsync.orders.push"
    CART_MAP = "ctsync.carts.map"
    CART_PUSH = "ctsync.carts.push"
    EVENTS_APPLY = "ctsync.events.apply"
    ORDER_RESYNC = "ctsync.orders.resync"
    ORDER_RECONCILE = "ctsync.orders.reconcile"
    ORDER_BACKFILL_ROLLUPS = "ctsync.orders.backfill_rollups"
    LIFECYCLE_CHURN = "ctsync.lifecycle.churn"
    WRITEBACK_POLL = "ctsync.writeback.poll"


class Entity(StrEnum):
    CUSTOMERS = "customers"
    ORDERS = "orders"
    CARTS = "carts"
    MESSAGES = "messages"


class Lane(StrEnum):
    LIVE = "live"
    BACKFILL = "backfill"


PUSH_QUEUE_BY_LANE = {Lane.LIVE: Queue.PUSH, Lane.BACKFILL: Queue.PUSH_BACKFILL}

# Beat entry names equal the task they run, suffixed by entity.
BEAT_EXTRACT_ENTRY = "extract-{entity}"
BEAT_LIFECYCLE_CHURN_ENTRY = "lifecycle-churn"
BEAT_WRITEBACK_ENTRY = "writeback-poll"

PREFIX = "ctsync"


class Keys:
    """Every Redis key the product writes. Keys of one entity share a prefix, so an operator can
    inspect them with `redis-cli --scan --pattern 'ctsync:customers:*'`."""

    @staticmethod
    def watermark(entity: str) -> str:
        return f"{PREFIX}:{entity}:watermark"

    @staticmethod
    def extract_lock(entity: str) -> str:
        return f"{PREFIX}:{entity}:extract-lock"

    @staticmethod
    def idmap(hs_object: str) -> str:
        """HASH commercetools id -> HubSpot id, for one HubSpot object type."""
        return f"{PREFIX}:idmap:{hs_object}"

    @staticmethod
    def email_index() -> str:
        """HASH normalised email -> HubSpot contact id."""
        return f"{PREFIX}:idmap:contact-email"

    @staticmethod
    def email_members(email_hash: str) -> str:
        """SET of commercetools customer ids sharing one email."""
        return f"{PREFIX}:contacts:members:{email_hash}"

    @staticmethod
    def fingerprints(entity: str) -> str:
        """HASH commercetools id -> fingerprint of the mapped values last pushed."""
        return f"{PREFIX}:{entity}:fingerprint"

    @staticmethod
    def written(hs_object: str) -> str:
        """HASH HubSpot id -> JSON of the property values the sync last wrote."""
        return f"{PREFIX}:written:{hs_object}"

    @staticmethod
    def written_generation(hs_object: str) -> str:
        """HASH HubSpot id -> counter bumped with every change of its `written` entry: a plan made
        against an older generation diffed against values that are no longer current."""
        return f"{PREFIX}:written-gen:{hs_object}"

    @staticmethod
    def write_lock(hs_object: str, hs_id: str) -> str:
        """STRING (with a TTL): the plan token of the push writing this record now."""
        return f"{PREFIX}:write-lock:{hs_object}:{hs_id}"

    @staticmethod
    def source_version(hs_object: str) -> str:
        """HASH HubSpot id -> commercetools lastModifiedAt of the newest data written (or being written)."""
        return f"{PREFIX}:source-version:{hs_object}"

    @staticmethod
    def create_intent(hs_object: str, key: str) -> str:
        return f"{PREFIX}:intent:{hs_object}:{key}"

    @staticmethod
    def match_tried(hs_object: str, day: int) -> str:
        """HASH commercetools id -> 1, per UTC day: records the match step sent on unread (nothing in
        Redis knew them); seen again, they are read from HubSpot (sync_tasks/match.py)."""
        return f"{PREFIX}:match-tried:{hs_object}:{day}"

    @staticmethod
    def associations(pair: str) -> str:
        """SET of 'fromId:toId' associations already created."""
        return f"{PREFIX}:assoc:{pair}"

    @staticmethod
    def run(run_id: str) -> str:
        """HASH of counters for one extraction or backfill run."""
        return f"{PREFIX}:run:{run_id}"

    @staticmethod
    def run_rollups(run_id: str) -> str:
        """SET of contact ids whose order rollups an order backfill leaves for its end (one write
        per person, not one per chunk holding some of their orders)."""
        return f"{PREFIX}:run:{run_id}:rollups"

    @staticmethod
    def run_rollups_lock(run_id: str) -> str:
        """STRING held by the one task writing a backfill's deferred rollups."""
        return f"{PREFIX}:run:{run_id}:rollups-lock"

    @staticmethod
    def run_joins(run_id: str) -> str:
        """SET of customer ids a customer backfill left for its end: accounts joining a contact by
        e-mail (sync_tasks/joins.py)."""
        return f"{PREFIX}:run:{run_id}:joins"

    @staticmethod
    def run_joins_lock(run_id: str) -> str:
        """STRING held by the one task sending a backfill's deferred joins."""
        return f"{PREFIX}:run:{run_id}:joins-lock"

    @staticmethod
    def run_links(run_id: str) -> str:
        """SET of a customer backfill's contact-company pairs not yet associated
        (sync_tasks/company_links.py)."""
        return f"{PREFIX}:run:{run_id}:links"

    @staticmethod
    def run_links_lock(run_id: str) -> str:
        """STRING held by the one task making a backfill's deferred associations."""
        return f"{PREFIX}:run:{run_id}:links-lock"

    @staticmethod
    def runs(entity: str) -> str:
        """LIST of recent run ids, newest first."""
        return f"{PREFIX}:{entity}:runs"

    @staticmethod
    def backfill_cursor(run_id: str) -> str:
        return f"{PREFIX}:backfill:{run_id}:cursor"

    @staticmethod
    def dlq() -> str:
        """STREAM of writes that failed permanently or exhausted their retries."""
        return f"{PREFIX}:dlq"

    @staticmethod
    def chunks_pending() -> str:
        """HASH chunk id -> JSON {ids, ctx} of every match → map → push chain not yet finished."""
        return f"{PREFIX}:chunks:pending"

    @staticmethod
    def chunks_touched() -> str:
        """HASH chunk id -> when one of its tasks last ran (epoch seconds)."""
        return f"{PREFIX}:chunks:touched"

    @staticmethod
    def entity_chunks_pending(entity: str) -> str:
        """HASH chunk id -> JSON {ids, ctx}: the in-flight ledger of another entity's chains (orders),
        kept apart from the customers' one, which `ctsync.reconcile` re-reads as customers."""
        return f"{PREFIX}:chunks:{entity}:pending"

    @staticmethod
    def entity_chunks_touched(entity: str) -> str:
        """HASH chunk id -> when one of its tasks last ran (epoch seconds), per entity."""
        return f"{PREFIX}:chunks:{entity}:touched"

    @staticmethod
    def payload(ref: str) -> str:
        """STRING JSON of one chain's records or plan, passed between its tasks by reference
        (`sync_tasks.payloads`); deleted when the chain ends, with a TTL for chains that never do."""
        return f"{PREFIX}:payload:{ref}"

    @staticmethod
    def dlq_replaying(entry_id: str) -> str:
        """Claim on one DLQ entry while it is replayed: two replays of it never both run."""
        return f"{PREFIX}:dlq:replaying:{entry_id}"

    @staticmethod
    def failures(task_id: str) -> str:
        """HASH first_failure, last_failure, last_error of one task's error retries (task ids survive
        retries), so its DLQ entry can say when the trouble began."""
        return f"{PREFIX}:failures:{task_id}"

    @staticmethod
    def order_pipeline() -> str:
        """JSON {pipeline_id, stages{label: id}} written by setup."""
        return f"{PREFIX}:orders:pipeline"

    @staticmethod
    def ledger(person: str) -> str:
        """HASH order id -> JSON {createdAt, state, total, currency, refunded} for one person."""
        return f"{PREFIX}:ledger:{person}"

    @staticmethod
    def lifecycle(person: str) -> str:
        """HASH lifecycle event key -> JSON claim (the event exists once its key is here) for one person."""
        return f"{PREFIX}:lifecycle:{person}"

    @staticmethod
    def lifecycle_orders(person: str) -> str:
        """HASH order id -> JSON {sub: subscription key, seen: first seen epoch} for one person."""
        return f"{PREFIX}:lifecycle-orders:{person}"

    @staticmethod
    def lifecycle_last_order() -> str:
        """ZSET person -> epoch of their last counted order: the churn pass's index."""
        return f"{PREFIX}:lifecycle:index:last-order"

    @staticmethod
    def lifecycle_pending() -> str:
        """SET of people with claimed lifecycle events not yet written to HubSpot."""
        return f"{PREFIX}:lifecycle:index:pending"

    @staticmethod
    def lifecycle_fired() -> str:
        """HASH 'kind|live' / 'kind|historical' -> events claimed (fired)."""
        return f"{PREFIX}:lifecycle:index:fired"

    @staticmethod
    def lifecycle_event_name(kind: str) -> str:
        """The fully qualified custom event name of one lifecycle event, once defined."""
        return f"{PREFIX}:lifecycle:index:event-name:{kind}"

    @staticmethod
    def index(name: str) -> str:
        """HASH lookups between commercetools ids: cart-order, payment-order, customer-company, order-person."""
        return f"{PREFIX}:index:{name}"

    @staticmethod
    def synced_version(entity: str) -> str:
        """HASH commercetools id -> the resource version the state sync last wrote."""
        return f"{PREFIX}:{entity}:synced-version"

    @staticmethod
    def event_sequence() -> str:
        """HASH resource id -> last applied message sequenceNumber."""
        return f"{PREFIX}:events:sequence"

    @staticmethod
    def custom_event_name() -> str:
        """The fully qualified name of our custom event definition, once created."""
        return f"{PREFIX}:events:custom-event-name"

    @staticmethod
    def messages_disabled() -> str:
        return f"{PREFIX}:messages:disabled"

    @staticmethod
    def abandon_watermark() -> str:
        return f"{PREFIX}:carts:abandon-watermark"

    @staticmethod
    def rejected() -> str:
        """STREAM of writes HubSpot or commercetools rejected (payload, error, ids, task, time); trimmed
        by age (`REJECTED_RETENTION_DAYS`); may be absent."""
        return f"{PREFIX}:rejected"

    @staticmethod
    def conflicts() -> str:
        """STREAM of HubSpot edits the sync overwrote or kept, with both values and the rule applied."""
        return f"{PREFIX}:conflicts"

    @staticmethod
    def conflict_seen() -> str:
        """HASH 'hs id|property' -> digest of the last conflict recorded for it (no repeats per sync)."""
        return f"{PREFIX}:conflicts:seen"

    @staticmethod
    def writeback_watermark() -> str:
        """lastmodifieddate (ms) up to which HubSpot contacts were checked for write-back."""
        return f"{PREFIX}:writeback:watermark"

    @staticmethod
    def writeback_lock() -> str:
        return f"{PREFIX}:writeback:lock"

    @staticmethod
    def writeback_versions() -> str:
        """HASH commercetools customer id -> the version our last write-back produced (echo guard)."""
        return f"{PREFIX}:writeback:versions"

    @staticmethod
    def metrics() -> str:
        """HASH of fleet-wide counters ('kind|label|label' -> n) that the exporter publishes."""
        return f"{PREFIX}:metrics"

    @staticmethod
    def hubspot_limits() -> str:
        """HASH of the last rate-limit headers HubSpot sent (max, remaining, daily, at)."""
        return f"{PREFIX}:metrics:hubspot-limits"

    @staticmethod
    def consent() -> str:
        """HASH e-mail hash -> fingerprint of the consent decision last applied to HubSpot."""
        return f"{PREFIX}:consent:applied"

    @staticmethod
    def schema_ok(mapping_digest: str) -> str:
        """Set once HubSpot was seen to hold every property this mapping needs (short TTL)."""
        return f"{PREFIX}:schema:ok:{mapping_digest}"

    @staticmethod
    def rate_bucket(app_key: str, bucket: str) -> str:
        return f"{PREFIX}:rl:{app_key}:{bucket}"


def app_key(token: str) -> str:
    """A stable, non-secret key for a HubSpot private app: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def email_hash(email: str) -> str:
    """Emails are PII: keys use a hash of the normalised address."""
    return hashlib.sha256(email.encode()).hexdigest()[:24]
