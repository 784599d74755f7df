"""SMTP2GO webhooks: the receiver that takes delivery events, the task that records them.

- :mod:`worker.webhooks.app` — the Starlette receiver, ``create_app(...)`` and the
  blocking ``run(host, port, *, secret, insecure)`` the ``outbox webhooks`` command calls;
  ``python -m outbox.worker.webhooks`` runs it too.
- :mod:`worker.webhooks.events` — bodies -> normalised event dicts (the shape is drawn
  there), the provider-name map, the duplicate-collapsing digest.
- :mod:`worker.webhooks.tasks` — the Celery task ``outbox.record_event`` that appends an
  event to the record of the message it names and keeps the suppression set.

Nothing is imported here, so a worker loading the task does not load the web stack.
"""

from __future__ import annotations
