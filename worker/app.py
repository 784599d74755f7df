"""The Celery application: ``celery -A outbox.worker worker``."""

from __future__ import annotations

from celery import Celery

from outbox.worker import compat

__all__ = ["app"]

compat.install()
app = Celery("outbox")
# The package's own settings module, never a ``celeryconfig`` found on the path.
app.config_from_object("outbox.worker.celeryconfig")
# Registers the tasks on the app; imported here so ``-A outbox.worker`` is all a worker needs.
app.conf.imports = (
    "outbox.worker.checks",
    "outbox.worker.tasks",
    "outbox.worker.beat",
    "outbox.worker.parking",
    "outbox.worker.fanout",
    "outbox.worker.webhooks.tasks",
)
