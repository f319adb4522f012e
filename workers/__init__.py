"""Celery app and process bootstrap: `celery -A workers ...` finds `app` here."""

from workers.app import app
from workers.bootstrap import install

install(app)

__all__ = ["app"]
