"""What the sandbox keeps of each accepted send, template and webhook.

Records are what ``GET /_sandbox/messages`` lists and what the reports (stats, activity
search, SMS history) are computed from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EmailRecord", "LaterEvent", "SmsRecord", "Template", "Webhook"]


@dataclass(slots=True)
class LaterEvent:
    """Something that happened to one recipient after delivery (``POST /_sandbox/events``)."""

    #: The webhook name: ``open``, ``click``, ``bounce``, ``spam``, ``unsubscribe``, ...
    event: str
    rcpt: str
    time: float
    #: ``hard`` or ``soft`` for a bounce.
    bounce: str | None = None


@dataclass(slots=True)
class EmailRecord:
    """One accepted ``email/send``, ``email/mime`` or ``email/batch`` item."""

    index: int
    endpoint: str
    email_id: str
    request_id: str
    #: Epoch seconds at which the request was counted against the limit (its arrival).
    time: float
    #: The sender as given, possibly ``Name <addr>``.
    sender: str
    #: The bare sender address.
    from_address: str
    #: The display name of the sender, ``""`` when none was given.
    from_name: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    #: Bare addresses accepted for delivery: each address once (to, cc and bcc together),
    #: the rejected ones left out.
    recipients: list[str]
    #: Addresses that were not delivered: suppressed, or all of them when the email was
    #: rejected as a whole (an unverified sender under ``fastaccept``).
    rejected: list[str]
    #: Why the ``rejected`` addresses were rejected (``suppressed`` or a whole-email reason).
    reject_reason: str
    #: Accepted recipients at the bounce domain.
    bounced: list[str]
    subject: str
    html_body: str | None
    text_body: str | None
    custom_headers: dict[str, str]
    message_id: str
    size: int
    #: The short form of the key that sent it (``api-`` and its first 12 characters), as
    #: webhooks report it in ``auth``; never the whole key.
    auth: str = ""
    #: The IP address the request came from (``srchost`` of the ``processed`` event).
    client_ip: str = ""
    template_id: str | None = None
    template_data: dict[str, Any] | None = None
    attachments: list[str] = field(default_factory=list)
    #: The MIME type of each attachment, as given or inferred from its filename.
    attachment_mimetypes: list[str] = field(default_factory=list)
    inlines: list[str] = field(default_factory=list)
    inline_mimetypes: list[str] = field(default_factory=list)
    schedule: str | None = None
    schedule_id: str | None = None
    fastaccept: bool = False
    #: Events after delivery, in the order they happened.
    events: list[LaterEvent] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SmsRecord:
    """One accepted ``sms/send``: a message per destination, all with the same content."""

    index: int
    request_id: str
    #: Epoch seconds at which the request was counted against the limit (its arrival).
    time: float
    sender: str | None
    destination: list[str]
    content: str
    #: Units per destination (over 160 GSM characters splits into several).
    units: int
    message_ids: list[str]
    endpoint: str = "sms/send"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recipients"] = self.destination
        return data


@dataclass(slots=True)
class Template:
    """A stored template; ``id`` is chosen by the caller (5-24 chars, case-sensitive)."""

    id: str
    name: str
    subject: str
    html_body: str
    text_body: str
    template_variables: dict[str, Any]
    tags: list[str]
    last_updated: str


@dataclass(slots=True)
class Webhook:
    """A registered webhook, shaped like the answers of ``webhook/*``."""

    id: int
    url: str
    events: list[str]
    sms_events: list[str]
    headers: list[str]
    usernames: list[str]
    output_format: str
    auth_header_type: str
    auth_header_value: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
