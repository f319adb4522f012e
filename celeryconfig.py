"""Celery configuration for every process of the fleet (workers, beat, Flower, the CLI).

Broker and schedule live in Redis (see `sync_tasks.redis_conn` for which Redis). Tasks are late-acked
and rejected on worker loss, so a killed worker's task is redelivered: every task is idempotent.
"""

from celery.schedules import crontab
from kombu import Exchange
from kombu import Queue as KombuQueue

from sync_tasks.constants import (
    BEAT_EXTRACT_ENTRY,
    BEAT_LIFECYCLE_CHURN_ENTRY,
    BEAT_WRITEBACK_ENTRY,
    Entity,
    Queue,
    TaskName,
)
from sync_tasks.redis_conn import redis_url
from sync_tasks.settings import get_settings

_settings = get_settings()
_url = redis_url()

# A task countdown must stay below this, or Redis redelivers the message while it waits; a killed
# worker's unacked tasks come back after it. Countdowns are capped at half of it.
VISIBILITY_TIMEOUT = _settings.broker_visibility_timeout
MAX_COUNTDOWN = VISIBILITY_TIMEOUT // 2

broker_url = _url
# unacked_restore_throttle 1: every worker sweeps for a dead worker's messages every 10 s (kombu's
# default scans only every 10th sweep).
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT, "unacked_restore_throttle": 1}
visibility_timeout = VISIBILITY_TIMEOUT
# A retry or the next task of a chain is a publish: ride out a Redis restart of a few seconds.
task_publish_retry_policy = {"max_retries": 30, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2.0}
broker_connection_retry_on_startup = True
result_backend = None  # chains pass results in the message; nothing reads task results
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_max_tasks_per_child = 1000
task_soft_time_limit = 300
task_time_limit = 360
worker_send_task_events = True
task_send_sent_event = True

task_default_queue = Queue.SYNC.value
# One direct exchange per queue, routing key = queue name: a message lands in exactly one queue.
task_queues = [KombuQueue(q.value, Exchange(q.value, type="direct"), routing_key=q.value)
               for q in Queue if q is not Queue.DEADLETTER]
task_routes = {
    TaskName.EXTRACT.value: {"queue": Queue.EXTRACT.value},
    TaskName.BACKFILL.value: {"queue": Queue.EXTRACT.value},
    TaskName.MATCH.value: {"queue": Queue.SYNC.value},
    TaskName.MAP.value: {"queue": Queue.SYNC.value},
    TaskName.RESYNC.value: {"queue": Queue.SYNC.value},
    TaskName.RECONCILE.value: {"queue": Queue.EXTRACT.value},
    TaskName.PUSH.value: {"queue": Queue.PUSH.value},
    TaskName.LINKS.value: {"queue": Queue.PUSH_BACKFILL.value},  # a backfill's HubSpot writes
    TaskName.WRITEBACK_POLL.value: {"queue": Queue.EXTRACT.value},
}

beat_scheduler = "redbeat.RedBeatScheduler"
redbeat_redis_url = _url
redbeat_key_prefix = "ctsync:redbeat"
redbeat_lock_timeout = max(5 * _settings.sync_interval, 60)
# Beat wakes at least every second, so a delta starts on time (freshness = interval + pipeline).
beat_max_loop_interval = 1
beat_schedule = {
    BEAT_EXTRACT_ENTRY.format(entity=entity.value): {
        "task": TaskName.EXTRACT.value,
        "schedule": float(_settings.sync_interval),
        "args": (entity.value,),
        # Runs queued during an outage expire instead of piling up.
        "options": {"queue": Queue.EXTRACT.value, "expires": float(_settings.sync_interval)},
    }
    for entity in Entity
}
# Lifecycle: one churn pass a day (it writes to HubSpot: the live push queue).
beat_schedule[BEAT_LIFECYCLE_CHURN_ENTRY] = {
    "task": TaskName.LIFECYCLE_CHURN.value,
    "schedule": crontab(minute=0, hour=_settings.lifecycle_churn_hour),
    "options": {"queue": Queue.PUSH.value, "expires": 12 * 3600.0},
}
# HubSpot-owned properties edited in HubSpot → commercetools (docs/ownership.md); a no-op when the
# mapping has no `write_back` property.
beat_schedule[BEAT_WRITEBACK_ENTRY] = {
    "task": TaskName.WRITEBACK_POLL.value,
    "schedule": float(_settings.writeback_interval),
    "options": {"queue": Queue.EXTRACT.value, "expires": float(_settings.writeback_interval)},
}
# Chains whose message the broker lost (see sync_tasks/inflight.py) are found and re-enqueued.
RECONCILE_INTERVAL = 60.0
beat_schedule["reconcile-chunks"] = {
    "task": TaskName.RECONCILE.value,
    "schedule": RECONCILE_INTERVAL,
    "options": {"queue": Queue.EXTRACT.value, "expires": RECONCILE_INTERVAL},
}
