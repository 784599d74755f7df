"""outbox workers, Celery's side: the app, its settings and tasks, the delivery, the retry
policy, the relay, beat, the webhook receiver and metrics (both sides' ground is
:mod:`outbox.core`).

``celery -A outbox.worker worker`` finds :data:`app` here.
"""

from __future__ import annotations

from outbox.worker.celery_app import app

__all__ = ["app"]
