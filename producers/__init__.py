"""outbox: an outbound-messaging queue for SMTP2GO. What a web app imports::

    from outbox import send_email

    handle = send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="Thanks")
    handle.status().state  # queued, sending, retrying, sent, failed, dead

Importing this package loads the producers only: no command line, demo, sandbox or web
framework. The workers are ``celery -A outbox.worker worker``.
"""

from __future__ import annotations

from outbox.control import cancel, pause, resume
from outbox.core.errors import (
    EnqueueError,
    IdempotencyConflict,
    OutboxError,
    RecordNotFound,
    SMTP2GOError,
    Unavailable,
    ValidationError,
)
from outbox.core.states import State
from outbox.core.views import ChunkRecord, Record
from outbox.erase import erase
from outbox.handle import Handle, status
from outbox.resend import retry_failed
from outbox.send import send_email, send_mime, send_sms, send_template

__all__ = [
    "ChunkRecord",
    "EnqueueError",
    "Handle",
    "IdempotencyConflict",
    "OutboxError",
    "Record",
    "RecordNotFound",
    "SMTP2GOError",
    "State",
    "Unavailable",
    "ValidationError",
    "cancel",
    "erase",
    "pause",
    "resume",
    "retry_failed",
    "send_email",
    "send_mime",
    "send_sms",
    "send_template",
    "status",
]
