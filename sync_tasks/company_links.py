"""A customer backfill's contact → company associations, made in full batches.

HubSpot meters association calls apart from other writes, at 150 per 10 s (Pro/Enterprise) against
190. A backfill chunk that associated its own contacts made one part-full call (about 10 of its 100
contacts have a company) per chunk: 203 calls for the bench's 20,000 customers, and the association
budget, not the write budget, set the pace of the whole customer phase (about 0.72 of the write
limit).

So a backfill's first pass keeps the new pairs in a set of the run. The push that brings the set to
a full batch (ASSOCIATION_BATCH_LIMIT, 2,000 pairs) makes it; what is left is made by one task once
every record of the run is done, and the run is not complete before then (`SyncState.run_complete`).
Deltas and the joins at a run's end associate at once (their freshness matters more than a call).

Making a pair twice is harmless (HubSpot keeps one default association per pair), so a maker lost
between its call and its removal of the pairs costs a repeat, never a missing association. A pair
HubSpot refuses (a company deleted in HubSpot since we made it) goes to the rejected log and the
dead-letter queue with its customers' ids, the rest of its batch made (associations.py); their
replay pushes those customers again and re-makes the company (`ContactPusher._companies`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sync_tasks.associations import associate_pairs, record_refused
from sync_tasks.constants import ASSOCIATION_BATCH_LIMIT, Keys
from sync_tasks.errors import ErrorDetail
from sync_tasks.hubspot_client import HubSpotClient
from sync_tasks.joins import only_joins_left
from sync_tasks.state import LINKS_MADE, LINKS_PENDING, RUN_TTL_SECONDS, SyncState

log = logging.getLogger(__name__)

CONTACTS, COMPANIES = "contacts", "companies"
PAIR = "contact-company"  # `SyncState.save_associations`' name for these pairs
LOCK_SECONDS = 300  # a maker renews nothing; a lost one's lock expires and the reconciler claims again
BATCH_LOCK_SECONDS = 60  # a push making one full batch: a lost one delays the run's end by this, at most

# A member of the run's set: "contact id:company id:customer id|customer id…" (HubSpot ids are
# digits and commercetools ids UUIDs, so neither holds a separator).
Link = tuple[str, str, list[str]]


def _member(link: Link) -> str:
    contact, company, customers = link
    return f"{contact}:{company}:{'|'.join(customers)}"


def _parse(member: bytes | str) -> Link:
    text = member.decode() if isinstance(member, bytes) else member
    contact, company, customers = text.split(":", 2)
    return contact, company, [c for c in customers.split("|") if c]


def defer_links(state: SyncState, run_id: str, links: Iterable[Link]) -> int:
    """Keep these pairs for a full batch (or the run's end); returns how many the run now holds."""
    members = [_member(link) for link in links]
    if not members:
        return 0
    pipe = state.r.pipeline()
    pipe.sadd(Keys.run_links(run_id), *members)
    pipe.expire(Keys.run_links(run_id), RUN_TTL_SECONDS)
    pipe.hset(Keys.run(run_id), "links", LINKS_PENDING)
    pipe.scard(Keys.run_links(run_id))
    return int(pipe.execute()[-1])


def waiting(state: SyncState, run_id: str) -> int:
    return int(state.r.scard(Keys.run_links(run_id)))


def make_full_batches(state: SyncState, hubspot: HubSpotClient, run_id: str, task: str, held: int) -> int:
    """What a push calls after `defer_links` (`held`: what it returned): the full batches the run
    holds, unless another task is making its pairs. Returns the pairs made. A RetryableError (no
    budget, HubSpot down) leaves them for the next full batch or the run's end."""
    if held < ASSOCIATION_BATCH_LIMIT:
        return 0
    if not state.r.set(Keys.run_links_lock(run_id), "1", nx=True, ex=BATCH_LOCK_SECONDS):
        return 0
    try:
        return make_links(state, hubspot, run_id, task, whole=False)
    finally:
        state.r.delete(Keys.run_links_lock(run_id))


def claim_links(state: SyncState, run_id: str, run: dict[str, Any] | None = None) -> bool:
    """True for the one caller that should now make the rest of the run's pairs: every record but the
    joins is done (`joins.only_joins_left`: the joins associate at once), and no task holds the lock.
    `run`: the run as just read, if the caller has it."""
    run = run if run is not None else state.run(run_id)
    if run.get("links") != LINKS_PENDING or not only_joins_left(state, run_id, run):
        return False
    return bool(state.r.set(Keys.run_links_lock(run_id), "1", nx=True, ex=LOCK_SECONDS))


def finish_links(state: SyncState, hubspot: HubSpotClient, run_id: str, task: str) -> int:
    """The run's end (the caller holds the lock from `claim_links`): every pair left, then the run's
    `links` field is made. A RetryableError leaves the rest in the set and the lock held: the task's
    retry goes on; once retries run out the lock expires and the reconciler claims again."""
    made = make_links(state, hubspot, run_id, task, whole=True)
    if waiting(state, run_id) == 0:
        state.r.hset(Keys.run(run_id), "links", LINKS_MADE)
    state.r.delete(Keys.run_links_lock(run_id))
    log.info("backfill %s: %d contact-company associations made at the run's end", run_id, made)
    return made


def make_links(state: SyncState, hubspot: HubSpotClient, run_id: str, task: str, whole: bool) -> int:
    """Batches of the run's pairs, full ones only unless `whole`; each leaves the set once made."""
    key = Keys.run_links(run_id)
    made = 0
    while True:
        members = list(state.r.srandmember(key, ASSOCIATION_BATCH_LIMIT))
        if not members or (not whole and len(members) < ASSOCIATION_BATCH_LIMIT):
            return made
        by_pair: dict[tuple[str, str], list[Link]] = {}
        for member in members:
            link = _parse(member)
            by_pair.setdefault((link[0], link[1]), []).append(link)
        made += _associate(state, hubspot, task, by_pair)
        state.r.srem(key, *members)


def _associate(state: SyncState, hubspot: HubSpotClient, task: str,
               by_pair: dict[tuple[str, str], list[Link]]) -> int:
    """Associate these pairs; the ones HubSpot refuses are logged and dead-lettered (associations.py).
    Returns the pairs made."""
    done = associate_pairs(lambda pairs: hubspot.associate_default(CONTACTS, COMPANIES, pairs), list(by_pair))
    for pair, detail in sorted(done.refused.items()):
        _refuse(state, task, by_pair[pair], detail)
    state.save_associations(PAIR, done.made)
    return len(done.made)


def _refuse(state: SyncState, task: str, links: list[Link], detail: ErrorDetail) -> None:
    contact, company = links[0][0], links[0][1]
    record_refused(state, task, f"contact {contact} with company {company}",
                   sorted({c for link in links for c in link[2]}), {"links": [[contact, company]]}, detail)
