"""Celery configuration for every process of the fleet (workers, beat, Flower, the CLI).

Broker and schedule live in Redis (see `sync_tasks.redis_conn` for which Redis). Tasks are late-acked
and rejected on worker loss, so a killed worker's task is redelivered: every task is idempotent.
"""

from kombu import Exchange
from kombu import Queue as KombuQueue

from sync_tasks.constants import BEAT_EXTRACT_ENTRY, Entity, Queue, TaskName
from sync_tasks.redis_conn import redis_url
from sync_tasks.settings import get_settings

_settings = get_settings()
_url = redis_url()

# A task countdown must stay below this, or Redis redelivers the message while it waits.
VISIBILITY_TIMEOUT = 3600
MAX_COUNTDOWN = 1800

broker_url = _url
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT}
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
    TaskName.PUSH.value: {"queue": Queue.PUSH.value},
}

beat_scheduler = "redbeat.RedBeatScheduler"
redbeat_redis_url = _url
redbeat_key_prefix = "ctsync:redbeat"
redbeat_lock_timeout = max(5 * _settings.sync_interval, 60)
beat_max_loop_interval = min(_settings.sync_interval, 30)
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
