"""Process bootstrap for workers and beat: structured logs, task context, retry metrics and Sentry.

Sentry starts only when SENTRY_DSN is set (nothing is sent otherwise), in workers (`celeryd_init`)
and in beat (`beat_init`, which `celeryd_init` does not reach). Events carry no PII: default PII is
off, e-mail addresses are masked and the values of our secrets are replaced wherever they appear.

What becomes an event: every ERROR log (a task dead-lettering after its retries, an unexpected
exception) and the WARNING with which push reports a write HubSpot rejected for good — one event
per dead-lettered write, tagged with HubSpot's correlationId when the error carried one.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from celery import Celery, signals

from sync_tasks import logs
from sync_tasks.constants import Entity
from sync_tasks.settings import Settings, get_settings

# Loggers whose warnings are dead letters (a write refused for good), hence Sentry events.
DEAD_LETTER_LOGGERS = ("sync_tasks.push",)
SCRUB_KEYS = ["token", "hubspot_token", "ct_client_secret", "client_secret", "flower_basic_auth", "sentry_dsn",
              "email", "emails", "authorization"]
_CORRELATION = re.compile(r"correlation_?id\W{1,6}([0-9A-Za-z][0-9A-Za-z-]{7,})", re.IGNORECASE)
FILTERED = "[Filtered]"


# -- task context for every log line -------------------------------------------------------------
def entity_of(args: Any) -> str | None:
    """The entity a task works on, from its arguments (an entity name, or a ctx dict)."""
    for arg in args or ():
        if isinstance(arg, str) and arg in {e.value for e in Entity}:
            return arg
        if isinstance(arg, dict):
            ctx: dict[str, Any] = arg["ctx"] if isinstance(arg.get("ctx"), dict) else arg
            if isinstance(ctx.get("entity"), str):
                return str(ctx["entity"])
    return None


def _task_started(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    context = {"task_id": task_id or "", "task": getattr(task, "name", "")}
    entity = entity_of(args)
    if entity:
        context["entity"] = entity
    logs.task_context.set(context)


def _task_finished(**_: Any) -> None:
    logs.task_context.set(None)


def _task_retried(sender: Any = None, reason: Any = None, **_: Any) -> None:
    from sync_tasks import metrics
    from sync_tasks.errors import WaitError
    from sync_tasks.redis_conn import get_redis

    kind = "wait" if isinstance(reason, WaitError) else "error"
    metrics.count_retry(get_redis(), getattr(sender, "name", "unknown"), kind)


# -- Sentry ----------------------------------------------------------------------------------------
def _secrets(settings: Settings) -> list[str]:
    values = [settings.hubspot_token.get_secret_value(), settings.ct_client_secret.get_secret_value()]
    if settings.flower_basic_auth is not None:
        values += [p.partition(":")[2] for p in settings.flower_basic_auth.get_secret_value().split(",")]
    return [v for v in values if len(v) >= 6]


def scrub(value: Any, secrets: list[str]) -> Any:
    """`value` with secret values filtered and e-mail addresses masked, walking into containers."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, FILTERED)
        return logs.mask_emails(value)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def before_send(secrets: list[str]) -> Any:
    def hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        event = scrub(event, secrets)
        found = _CORRELATION.search(json.dumps(event.get("logentry") or {}, default=str)) or \
            _CORRELATION.search(json.dumps(event.get("extra") or {}, default=str))
        if found:
            event.setdefault("tags", {})["hubspot.correlation_id"] = found.group(1)
        return event
    return hook


class _BelowError(logging.Filter):
    """ERROR records already become events through the logging integration: never send them twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def init_sentry(settings: Settings, transport: Any = None) -> bool:
    """Start Sentry when a DSN is set (or a transport is given, in tests); return whether it did."""
    if settings.sentry_dsn is None and transport is None:
        return False  # nothing is sent without a DSN
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.logging import EventHandler, LoggingIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    secrets = _secrets(settings)
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None,
        transport=transport,
        send_default_pii=False,
        max_request_body_size="never",
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + SCRUB_KEYS, recursive=True),
        before_send=before_send(secrets),
        before_breadcrumb=lambda crumb, hint: scrub(crumb, secrets),
        integrations=[CeleryIntegration(monitor_beat_tasks=True),  # beat entries as Sentry crons
                      LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    for name in DEAD_LETTER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, EventHandler) for h in logger.handlers):
            handler = EventHandler(level=logging.WARNING)
            handler.addFilter(_BelowError())
            logger.addHandler(handler)
    return True


def _setup_logging(**_: Any) -> None:
    settings = get_settings()
    logs.configure(json_lines=settings.log_json, pii=settings.log_pii)


def install(app: Celery) -> None:
    signals.setup_logging.connect(_setup_logging, weak=False)
    signals.task_prerun.connect(_task_started, weak=False)
    signals.task_postrun.connect(_task_finished, weak=False)
    signals.task_retry.connect(_task_retried, weak=False)
    signals.celeryd_init.connect(lambda **_: init_sentry(get_settings()), weak=False)
    signals.beat_init.connect(lambda **_: init_sentry(get_settings()), weak=False)
