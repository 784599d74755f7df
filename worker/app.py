"""The Celery application: ``celery -A worker worker``."""

from __future__ import annotations

from celery import Celery

from worker import compat

__all__ = ["app"]

compat.install()
app = Celery("outbox")
app.config_from_object("celeryconfig")
# Registers the tasks on the app; imported here so ``-A worker`` is all a worker needs.
app.conf.imports = (
    "worker.checks",
    "worker.tasks",
    "worker.beat",
    "worker.parking",
    "worker.fanout",
    "worker.webhooks.tasks",
)
