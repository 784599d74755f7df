"""What a web app imports to queue email, MIME, templated email and SMS.

>>> from outbox import send_email
>>> handle = send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="Thanks")
>>> handle.status().state
"""

from __future__ import annotations

from outbox.api import (
    Handle,
    send_email,
    send_mime,
    send_sms,
    send_template,
    status,
)
from outbox.errors import (
    EnqueueError,
    OutboxError,
    RecordNotFound,
    SMTP2GOError,
    ValidationError,
)
from outbox.worker.records import ChunkRecord, Record
from outbox.worker.states import State

__all__ = [
    "ChunkRecord",
    "EnqueueError",
    "Handle",
    "OutboxError",
    "Record",
    "RecordNotFound",
    "SMTP2GOError",
    "State",
    "ValidationError",
    "send_email",
    "send_mime",
    "send_sms",
    "send_template",
    "status",
]
