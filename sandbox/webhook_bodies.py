"""Webhook bodies in the real service's shape.

Email events follow the two bodies captured live on 2026-03-24 (Alos-no/Smtp2Go.NET,
``tests/Smtp2Go.NET.UnitTests/Models/WebhookPayloadFormParsingTests.cs``):

* ``processed`` is **one event per email**, with ``recipients`` (a list; in form output
  one ``recipients`` field per address: only a one-recipient body was ever captured, so
  the repeated key is an assumption) and ``srchost`` (the IP that submitted it); no
  ``rcpt``.
* Later events (``delivered``, ``bounce``, ``reject``, ``open``, ``click``, ``spam``,
  ``unsubscribe``, ``resubscribe``) are **one per recipient**, with ``rcpt``, ``host``,
  ``message`` and ``context`` (and ``bounce``: ``hard`` or ``soft``).
* Every event carries ``Message-Id``/``message-id`` and ``Subject``/``subject`` (the
  headers sent by default), ``auth`` (the key's short form), ``email_id``, ``event``,
  ``from``, ``from_address``, ``from_name``, ``id`` (32 hex digits, one per call and the
  same on every retry of it), ``sender``, ``time`` (``2026-03-24T08:23:19Z``) and
  ``sendtime`` (``2026-03-24T08:23:19.052765+00:00``). In both captures ``sendtime`` is
  the event's own moment with microseconds, so it is here too.

SMS events follow the payload table of the webhooks page
(https://developers.smtp2go.com/docs/webhooks-overview): ``sms_*`` names with
``destination_number``, ``message_id``, ``message_content``, ``source_number``,
``status_code``, ``region``, ``retry_count``, ``sender_email``, ``submitted_timestamp``
and ``received_timestamp``. No SMS body was ever captured: the values are assumptions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from outbox.sandbox.records import EmailRecord, LaterEvent, SmsRecord, Webhook
from outbox.sandbox.state import SandboxState

__all__ = [
    "EMAIL_EVENTS",
    "SMS_EVENTS",
    "SMS_LIFECYCLE",
    "EmailEvent",
    "delivered",
    "email_payload",
    "events_at_acceptance",
    "iso",
    "later_event",
    "sendtime",
    "sms_payload",
]

#: The email events a webhook subscribes to (``webhook/add`` ``events``), and
#: ``resubscribe``, which the payload table lists too.
EMAIL_EVENTS = frozenset(
    {
        "processed",
        "delivered",
        "open",
        "click",
        "bounce",
        "spam",
        "unsubscribe",
        "resubscribe",
        "reject",
    }
)
#: The SMS events a webhook subscribes to (``sms_events``); the payload says ``sms_<name>``.
SMS_EVENTS = frozenset({"sending", "submitted", "delivered", "failed", "rejected", "opt-out"})
#: The SMS lifecycle the sandbox plays for an accepted message, in order.
SMS_LIFECYCLE = ("sending", "submitted", "delivered")
#: What an open or click reports about the reader (documented fields, made-up values).
_READER = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0",
    "client": "Thunderbird",
    "client-device": "desktop",
    "client-os": "Linux",
    "geoip-continent": "OC",
    "geoip-country": "AU",
    "geoip-city": "Sydney",
    "srchost": "127.0.0.1",
}
#: Country code prefix -> ``region`` of an SMS event (a few; the rest ``ZZ``).
_REGIONS = {"1": "US", "44": "GB", "61": "AU", "64": "NZ", "49": "DE", "33": "FR", "353": "IE"}


def iso(epoch: float) -> str:
    """``time``: UTC, whole seconds, ``Z`` (``2026-03-24T08:23:19Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sendtime(epoch: float) -> str:
    """``sendtime``: UTC with microseconds and ``+00:00`` (``…19.052765+00:00``)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


@dataclass(slots=True)
class EmailEvent:
    """One thing that happened to an email, before it is addressed to a webhook."""

    event: str
    #: The recipient; ``None`` for ``processed``, which lists them all.
    rcpt: str | None
    at: float
    fields: dict[str, Any] = field(default_factory=dict)


def _delivered(state: SandboxState, record: EmailRecord, rcpt: str, at: float) -> EmailEvent:
    domain = rcpt.rpartition("@")[2]
    queued_as = state.token(13)
    return EmailEvent(
        "delivered",
        rcpt,
        at,
        {
            "host": f"mx.{domain} [127.0.0.1]",
            "context": "Unavailable",
            "message": f"250 2.0.0 Ok: {record.size} bytes queued as {queued_as}",
        },
    )


def _bounce(rcpt: str, at: float, kind: str) -> EmailEvent:
    domain = rcpt.rpartition("@")[2]
    if kind == "hard":
        message = f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"
        context = f"RCPT TO:<{rcpt}>"
    else:
        message = "452 4.2.2 Mailbox full"
        context = "DATA: 452 Mailbox full"
    return EmailEvent(
        "bounce",
        rcpt,
        at,
        {
            "bounce": kind,
            "host": f"mx.{domain} [127.0.0.1]",
            "context": context,
            "message": message,
        },
    )


def _reject(record: EmailRecord, rcpt: str, at: float) -> EmailEvent:
    if record.reject_reason == "suppressed":
        message = f"{rcpt} is on the suppression list"
    else:
        message = f"rejected: {record.reject_reason}"
    return EmailEvent(
        "reject", rcpt, at, {"host": "", "context": "Unavailable", "message": message}
    )


def events_at_acceptance(state: SandboxState, record: EmailRecord, at: float) -> list[EmailEvent]:
    """``processed`` once, then ``delivered`` or ``bounce`` per recipient, ``reject`` per
    rejected one; ``at`` is when the email goes out (later for a scheduled one)."""
    events: list[EmailEvent] = []
    if record.recipients:
        events.append(
            EmailEvent(
                "processed",
                None,
                at,
                {"recipients": list(record.recipients), "srchost": record.client_ip},
            )
        )
    done = max(at, time.time())
    bounced = set(record.bounced)
    for rcpt in record.recipients:
        if rcpt in bounced:
            events.append(_bounce(rcpt, done, "hard"))
        else:
            events.append(_delivered(state, record, rcpt, done))
    events.extend(_reject(record, rcpt, done) for rcpt in record.rejected)
    return events


def delivered(state: SandboxState, record: EmailRecord, rcpt: str) -> EmailEvent:
    """The ``delivered`` event of one recipient, now (for a report a test asks for)."""
    return _delivered(state, record, rcpt, time.time())


def later_event(later: LaterEvent) -> EmailEvent:
    """The webhook event of something a recipient did (``POST /_sandbox/events``)."""
    if later.event == "bounce":
        return _bounce(later.rcpt, later.time, later.bounce or "hard")
    fields: dict[str, Any] = {"host": "", "context": "Unavailable", "message": ""}
    if later.event in ("open", "click"):
        fields = dict(_READER)
        if later.event == "open":
            fields["read-secs"] = "10"
    return EmailEvent(later.event, later.rcpt, later.time, fields)


def email_payload(
    record: EmailRecord, event: EmailEvent, hook: Webhook, event_id: str
) -> dict[str, Any]:
    """The body one webhook gets for one event (keys in the order of the captures)."""
    payload: dict[str, Any] = {
        "Message-Id": record.message_id,
        "Subject": record.subject,
        "auth": record.auth,
        "email_id": record.email_id,
        "event": event.event,
        "from": record.sender,
        "from_address": record.from_address,
        "from_name": record.from_name,
    }
    # The event's own fields (host, message, context, bounce, ...) sit before ``id``, as in
    # the captures; ``recipients`` and ``srchost`` come later in key order.
    payload.update({k: v for k, v in event.fields.items() if k not in ("recipients", "srchost")})
    payload["id"] = event_id
    payload["message-id"] = record.message_id
    if event.rcpt is not None:
        payload["rcpt"] = event.rcpt
    if "recipients" in event.fields:
        payload["recipients"] = event.fields["recipients"]
    payload["sender"] = record.from_address
    payload["sendtime"] = sendtime(event.at)
    if "srchost" in event.fields:
        payload["srchost"] = event.fields["srchost"]
    payload["subject"] = record.subject
    payload["time"] = iso(event.at)
    if hook.headers:
        # "Custom headers you would specifically like sent in the event data. The headers
        # must already exist in the emails."
        lowered = {k.lower(): v for k, v in record.custom_headers.items()}
        for name in hook.headers:
            if name.lower() in lowered and name not in payload:
                payload[name] = lowered[name.lower()]
    return payload


def _region(number: str) -> str:
    digits = number.lstrip("+")
    for length in (3, 2, 1):
        if digits[:length] in _REGIONS:
            return _REGIONS[digits[:length]]
    return "ZZ"


def sms_payload(
    record: SmsRecord, number: str, message_id: str, event: str, event_id: str, at: float
) -> dict[str, Any]:
    """The body of one SMS event (``event`` is the subscription name, e.g. ``delivered``)."""
    return {
        "event": f"sms_{event}",
        "id": event_id,
        "message_id": message_id,
        "destination_number": number,
        "source_number": record.sender or "shared",
        "message_content": record.content,
        "sender_email": "",
        "status_code": event,
        "region": _region(number),
        "retry_count": 0,
        "submitted_timestamp": iso(record.time),
        "received_timestamp": iso(at),
    }
