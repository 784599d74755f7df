"""outbox workers: the Celery app, its tasks, the SMTP2GO client and the records.

``celery -A outbox.worker worker`` finds :data:`app` here.
"""

from __future__ import annotations

from outbox.worker.celery_app import app

__all__ = ["app"]
