"""The Celery app: configured from `celeryconfig`, tasks from `sync_tasks.tasks`.

Run a worker with `celery -A workers worker -Q ctsync.extract,ctsync.sync,ctsync.push`.
"""

from celery import Celery

from workers import serialization

serialization.install()  # before any message is decoded: every process that loads the app
app = Celery("ctsync")
app.config_from_object("celeryconfig")
app.conf.include = ["sync_tasks.tasks", "sync_tasks.commerce_tasks", "sync_tasks.carts", "sync_tasks.events"]
