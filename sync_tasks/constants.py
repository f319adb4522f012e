"""Queue names, task names and the Redis key layout: defined here and nowhere else."""

from __future__ import annotations

import hashlib
from enum import StrEnum


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


class Entity(StrEnum):
    CUSTOMERS = "customers"


class Lane(StrEnum):
    LIVE = "live"
    BACKFILL = "backfill"


PUSH_QUEUE_BY_LANE = {Lane.LIVE: Queue.PUSH, Lane.BACKFILL: Queue.PUSH_BACKFILL}

# Beat entry names equal the task they run, suffixed by entity.
BEAT_EXTRACT_ENTRY = "extract-{entity}"

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
    def create_intent(hs_object: str, key: str) -> str:
        return f"{PREFIX}:intent:{hs_object}:{key}"

    @staticmethod
    def associations(pair: str) -> str:
        """SET of 'fromId:toId' associations already created."""
        return f"{PREFIX}:assoc:{pair}"

    @staticmethod
    def run(run_id: str) -> str:
        """HASH of counters for one extraction or backfill run."""
        return f"{PREFIX}:run:{run_id}"

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
    def rate_bucket(app_key: str, bucket: str) -> str:
        return f"{PREFIX}:rl:{app_key}:{bucket}"


def app_key(token: str) -> str:
    """A stable, non-secret key for a HubSpot private app: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def email_hash(email: str) -> str:
    """Emails are PII: keys use a hash of the normalised address."""
    return hashlib.sha256(email.encode()).hexdigest()[:24]
