"""Process bootstrap for workers and beat: structured logs and, when SENTRY_DSN is set, Sentry."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from sync_tasks import logs
from sync_tasks.settings import get_settings


def _init_sentry() -> None:
    settings = get_settings()
    if settings.sentry_dsn is None:
        return  # nothing is sent without a DSN
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), send_default_pii=False,
                    integrations=[CeleryIntegration(monitor_beat_tasks=True)])


def _setup_logging(**_: Any) -> None:
    logs.configure(json_lines=get_settings().log_json)


def install(app: Celery) -> None:
    signals.setup_logging.connect(_setup_logging, weak=False)
    signals.celeryd_init.connect(lambda **_: _init_sentry(), weak=False)
    signals.beat_init.connect(lambda **_: _init_sentry(), weak=False)
