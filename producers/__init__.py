"""What a web app imports to queue email, MIME, templated email and SMS.

>>> from producers import send_email
>>> handle = send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="Thanks")
>>> handle.status().state
"""

from __future__ import annotations

from producers.api import (
    Handle,
    RecordNotFound,
    ValidationError,
    send_email,
    send_mime,
    send_sms,
    send_template,
    status,
)
from worker.records import ChunkRecord, Record
from worker.states import State

__all__ = [
    "ChunkRecord",
    "Handle",
    "Record",
    "RecordNotFound",
    "State",
    "ValidationError",
    "send_email",
    "send_mime",
    "send_sms",
    "send_template",
    "status",
]
