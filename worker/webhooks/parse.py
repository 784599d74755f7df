"""SMTP2GO webhook bodies -> normalised event dicts, and the key that collapses repeats.

Pure functions, no I/O: the receiver (:mod:`worker.webhooks.app`) parses with them and
the task (:mod:`worker.webhooks.tasks`) keys its writes by :func:`event_key`.

What the real service posts (https://developers.smtp2go.com/docs/webhooks-overview, and
two bodies captured live in Alos-no/Smtp2Go.NET ``WebhookPayloadFormParsingTests.cs``):

* email: ``processed`` once per email, with ``recipients`` (in a form body a repeated
  field; a delimited value is split too) and ``srchost``, no ``rcpt``; then one event per
  recipient (``delivered``, ``bounce``, ``reject``, ``open``, ``click``, ``spam``,
  ``unsubscribe``, ``resubscribe``) with ``rcpt``, ``host``, ``message``, ``context``
  (and ``bounce``: ``hard`` or ``soft``). Every one carries ``id`` (the notification's
  own id, the same on each retry), ``email_id``, ``auth``, ``from``, ``from_address``,
  ``from_name``, ``sender``, ``Subject``/``subject``, ``Message-Id``/``message-id``,
  ``time`` (``…Z``) and ``sendtime`` (``…+00:00``, microseconds);
* SMS: ``sms_sending``, ``sms_submitted``, ``sms_delivered``, ``sms_failed``,
  ``sms_rejected`` with ``id``, ``message_id``, ``destination_number``,
  ``source_number``, ``message_content``, ``status_code``, ``region``, ``retry_count``,
  ``sender_email``, ``submitted_timestamp``, ``received_timestamp``.

The normalised event (every key always present, ``None`` or ``[]`` when absent)::

    {
        "event": "bounce",           # our name: EVENT_NAMES[provider name], else as given
        "provider_event": "bounce",  # the name SMTP2GO posted ("sms_delivered", ...)
        "channel": "email",          # "email" or "sms"
        "event_id": "6dfa7d3b...",   # the provider's ``id`` of this notification
        "email_id": "1a2b...",       # SMTP2GO's email id (email events)
        "message_id": None,          # SMTP2GO's SMS message id (SMS events)
        "rcpt": "ann@example.org",   # the recipient (an SMS event's destination_number)
        "recipients": [],            # ``processed`` carries the whole list
        "time": "2026-03-24T08:23:19Z",  # an SMS event's received_timestamp
        "sendtime": "2026-03-24T08:23:19.052765+00:00",  # SMS: submitted_timestamp
        "bounce": "hard",            # "hard", "soft", another provider word, or None
        "host": "mx.example.org [192.0.2.1]",  # the recipient's server
        "message": "550 5.1.1 ...", # what that server answered
        "context": "RCPT TO:<ann@example.org>",  # where in the dialogue, or "Unavailable"
        "sender": "shop@example.com",
        "subject": "Receipt",
        "received_at": 1774340599.12,  # when the receiver got it (orders a record's events)
        "raw": {...},                # the posted fields, trimmed, auth-looking ones dropped
    }

Why the receiver normalises instead of the task: the broker then carries a small,
bounded dict of known shape, and a body the receiver cannot make sense of is answered
400 at once instead of failing later inside a worker.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from outbox.core.smtp2go.models import address_key
from outbox.core.states import Fate
from outbox.core.text import compact_json

__all__ = [
    "EVENT_NAMES",
    "SUPPRESSING_EVENTS",
    "InvalidPayload",
    "digest",
    "event_key",
    "fate_of",
    "normalise",
    "parse_form",
    "parse_json",
    "payloads_from_pairs",
    "should_suppress",
]

#: Provider event name (lower-cased) -> ours. The one place names are mapped; a name not
#: here is kept as posted, so a new provider event is recorded rather than refused.
#: Documented email events: processed, delivered, open, click, bounce, spam, unsubscribe,
#: resubscribe, reject; SMS events are posted as ``sms_sending``, ``sms_submitted``,
#: ``sms_delivered``, ``sms_failed``, ``sms_rejected`` (the subscription names without
#: the prefix) and become those bare names on the ``sms`` channel. The opt-out event's
#: payload name is not documented: ``opt-out`` with or without the prefix is taken. A
#: few past-tense spellings seen from other providers map to the same names.
EVENT_NAMES: dict[str, str] = {
    "processed": "processed",
    "delivered": "delivered",
    "open": "open",
    "opened": "open",
    "click": "click",
    "clicked": "click",
    "bounce": "bounce",
    "bounced": "bounce",
    "spam": "spam",
    "complaint": "spam",
    "unsubscribe": "unsubscribe",
    "unsubscribed": "unsubscribe",
    "resubscribe": "resubscribe",
    "resubscribed": "resubscribe",
    "reject": "reject",
    # SMS
    "sms_sending": "sending",
    "sms_submitted": "submitted",
    "sms_delivered": "delivered",
    "sms_failed": "failed",
    "sms_rejected": "rejected",
    "sms_opt-out": "opt-out",
    "sms_opt_out": "opt-out",
    "opt-out": "opt-out",
    "sending": "sending",
    "submitted": "submitted",
    "failed": "failed",
    "rejected": "rejected",
}

#: Events that put the recipient on the local suppression list (a bounce only when hard).
SUPPRESSING_EVENTS = frozenset({"bounce", "spam"})

#: Fields that always hold a list, even when a form body repeats them once.
_LIST_FIELDS = frozenset({"recipients"})
#: Email events that move a recipient in the batch's ledger -> its new place (a bounce:
#: by its ``bounce`` kind). ``processed`` is a step, not a final fate: the provider has
#: the email and is trying to deliver it.
_EMAIL_FATES = {
    "processed": Fate.PROCESSED,
    "delivered": Fate.DELIVERED,
    "spam": Fate.SPAM,
    "unsubscribe": Fate.UNSUBSCRIBED,
    "reject": Fate.REJECTED,
}
#: SMS events -> the recipient's place, after the SMS statuses of the webhooks page:
#: sending ("currently being processed"), submitted (handed to the downstream network,
#: not yet confirmed), delivered, failed (validity check, gateway failure, dropped),
#: rejected (blocked by the network), opt-out.
_SMS_FATES = {
    "sending": Fate.PROCESSED,
    "submitted": Fate.SUBMITTED,
    "delivered": Fate.DELIVERED,
    "failed": Fate.FAILED,
    "rejected": Fate.REJECTED,
    "opt-out": Fate.UNSUBSCRIBED,
}
#: How ``recipients`` may be delimited inside one value.
_DELIMITERS = re.compile(r"[,;]")
#: Keys never copied into ``raw``: anything that looks like a credential (``auth`` too:
#: it names the API key or SMTP user that sent the email).
_SENSITIVE = ("auth", "password", "passwd", "secret", "token", "api_key", "api-key")
_MAX_EVENT_NAME = 64
_MAX_TEXT = 1000
_MAX_KEYS = 64
_MAX_ITEMS = 100
#: A ``processed`` event lists the whole email: up to 100 each of to, cc and bcc.
_MAX_RECIPIENTS = 300
_MAX_DEPTH = 3
#: A form body with more fields than this is not an SMTP2GO event.
_MAX_FORM_FIELDS = 1000


class InvalidPayload(ValueError):
    """A body that is not an SMTP2GO event (answered 400, never retried into a worker)."""


# -- bodies -> payload dicts ----------------------------------------------------------------


def parse_json(body: bytes) -> list[dict[str, Any]]:
    """A JSON object or a list of them."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidPayload(f"body is not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidPayload(f"event {i} is not a JSON object")
    return items


def parse_form(body: bytes) -> list[dict[str, Any]]:
    """An ``application/x-www-form-urlencoded`` body (SMTP2GO's default output format)."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload(f"body is not a form: {exc}") from None
    return [payloads_from_pairs(pairs)]


def payloads_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as one payload: a repeated field (or ``name[]``) becomes a list."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        name = key[:-2] if key.endswith("[]") else key
        if name in out:
            current = out[name]
            out[name] = [*current, value] if isinstance(current, list) else [current, value]
        elif key.endswith("[]") or name in _LIST_FIELDS:
            out[name] = [value]
        else:
            out[name] = value
    return out


# -- payload -> normalised event ------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        value = value.strip()
        return value[:_MAX_TEXT] or None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and len(value) == 1:
        return _text(value[0])
    return None


def _addresses(value: Any) -> list[str]:
    """``recipients`` as a list, however it came: a JSON list, a repeated form field, or
    one value delimited by commas, semicolons or spaces (``"a@x; b@y"``, ``"a@x b@y"``)."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value[:_MAX_RECIPIENTS]
    else:
        return []
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        for part in _DELIMITERS.split(item):
            # "Ann Smith <ann@x>" keeps its spaces; bare addresses never have any.
            words = [part] if "<" in part or '"' in part else part.split()
            out.extend(t for t in (_text(w) for w in words) if t)
    return out[:_MAX_RECIPIENTS]


def _first(payload: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` the payload has a value for."""
    for name in names:
        text = _text(payload.get(name))
        if text:
            return text
    return None


def _bounce_type(value: Any) -> str | None:
    text = (_text(value) or "").lower()
    if not text:
        return None
    if "hard" in text:
        return "hard"
    if "soft" in text:
        return "soft"
    return text


def _sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SENSITIVE)


def _trim(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy: long strings cut, big lists and maps shortened."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if depth >= _MAX_DEPTH:
        return str(value)[:200]
    if isinstance(value, list):
        return [_trim(v, depth + 1) for v in value[:_MAX_ITEMS]]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if len(out) >= _MAX_KEYS:
                break
            name = str(key)[:100]
            if not _sensitive(name):
                out[name] = _trim(item, depth + 1)
        return out
    return str(value)[:200]


def normalise(payload: Mapping[str, Any], *, received_at: float) -> dict[str, Any]:
    """One posted event in our shape (see the module docstring); raises :class:`InvalidPayload`."""
    provider = payload.get("event")
    if isinstance(provider, list) and len(provider) == 1:
        provider = provider[0]
    if not isinstance(provider, str) or not provider.strip():
        raise InvalidPayload("missing 'event'")
    provider = provider.strip()
    if len(provider) > _MAX_EVENT_NAME:
        raise InvalidPayload("'event' is too long to be an event name")
    name = provider.lower()
    email_id = _text(payload.get("email_id"))
    sms_id = _text(payload.get("message_id"))
    destination = _first(payload, "destination_number", "destination")
    sms = name.startswith("sms_") or (
        email_id is None and (sms_id is not None or destination is not None)
    )
    return {
        "event": EVENT_NAMES.get(name, provider),
        "provider_event": provider,
        "channel": "sms" if sms else "email",
        "event_id": _text(payload.get("id")),
        "email_id": email_id,
        "message_id": sms_id if sms else None,
        "rcpt": _text(payload.get("rcpt")) or (destination if sms else None),
        "recipients": _addresses(payload.get("recipients")),
        "time": _first(payload, "time", "received_timestamp"),
        "sendtime": _first(payload, "sendtime", "submitted_timestamp"),
        "bounce": _bounce_type(payload.get("bounce")),
        "host": _text(payload.get("host")),
        "message": _text(payload.get("message")),
        "context": _text(payload.get("context")),
        "sender": _first(
            payload, "sender", "from_address", "from", "sender_email", "source_number"
        ),
        "subject": _first(payload, "subject", "Subject", "email_subject"),
        "received_at": received_at,
        "raw": _trim(dict(payload)),
    }


# -- what the task needs ----------------------------------------------------------------------


def digest(event: Mapping[str, Any]) -> str:
    """The identity of an event that came without an ``id``: the same event posted twice
    (a retry, JSON and form) has the same digest, so the record keeps it once."""
    raw = event.get("raw") or {}
    identity = [
        event.get("channel"),
        event.get("event"),
        event.get("email_id"),
        event.get("message_id"),
        address_key(str(event.get("rcpt") or "")),
        sorted(address_key(str(r)) for r in event.get("recipients") or []),
        event.get("time"),
        event.get("bounce"),
        # Two clicks in the same second on different links are two events.
        (raw.get("url") or raw.get("link")) if isinstance(raw, dict) else None,
    ]
    encoded = compact_json(identity).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def event_key(event: Mapping[str, Any]) -> str:
    """The key an event is kept under on its chunk: the provider's own ``id`` of the
    notification when it has one (a retry repeats it; two opens in the same second have
    two), else its :func:`digest`."""
    ident = event.get("event_id")
    if isinstance(ident, str) and ident:
        return f"id:{ident}"
    return digest(event)


def fate_of(event: Mapping[str, Any]) -> Fate | None:
    """Where an event puts its recipients in the batch's ledger, if anywhere."""
    name = str(event.get("event"))
    if event.get("channel") == "sms":
        return _SMS_FATES.get(name)
    if name == "bounce":
        return Fate.HARD_BOUNCED if event.get("bounce") == "hard" else Fate.SOFT_BOUNCED
    return _EMAIL_FATES.get(name)


def should_suppress(event: Mapping[str, Any]) -> str | None:
    """The address to add to the suppression set for this event, if any."""
    name = event.get("event")
    if event.get("channel") != "email" or name not in SUPPRESSING_EVENTS:
        return None
    if name == "bounce" and event.get("bounce") != "hard":
        return None
    rcpt = address_key(str(event.get("rcpt") or ""))
    return rcpt if "@" in rcpt else None
