"""Celery configuration; filled in by workers."""
