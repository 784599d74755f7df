"""SMTP2GO webhook bodies -> normalised event dicts, and the digest that collapses duplicates.

Pure functions, no I/O: the receiver (:mod:`worker.webhooks.app`) parses with them and
the task (:mod:`worker.webhooks.tasks`) keys its writes by :func:`digest`.

The normalised event (every key always present, ``None`` or ``[]`` when absent)::

    {
        "event": "bounce",           # our name: EVENT_NAMES[provider name], else as given
        "provider_event": "bounce",  # the name SMTP2GO posted
        "channel": "email",          # "email" or "sms"
        "email_id": "1a2b...",       # SMTP2GO's email id (email events)
        "message_id": None,          # SMTP2GO's SMS message id (SMS events)
        "rcpt": "ann@example.org",   # the recipient (an SMS event's destination)
        "recipients": [],            # ``processed`` carries the whole list
        "time": "2024-01-01T12:00:05Z",
        "sendtime": "2024-01-01T12:00:00Z",
        "bounce": "hard",            # "hard", "soft", another provider word, or None
        "sender": "shop@example.com",
        "subject": "Receipt",
        "received_at": 1704110405.12,  # when the receiver got it (orders a record's events)
        "raw": {...},                # the posted fields, trimmed, auth-looking ones dropped
    }

Why the receiver normalises instead of the task: the broker then carries a small,
bounded dict of known shape, and a body the receiver cannot make sense of is answered
400 at once instead of failing later inside a worker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from outbox.worker.smtp2go.models import address_key

__all__ = [
    "EVENT_NAMES",
    "SUPPRESSING_EVENTS",
    "InvalidPayload",
    "digest",
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
#: resubscribe, reject; SMS (``sms_events``): sending, submitted, delivered, failed,
#: rejected, opt-out, opt-in. A few past-tense spellings seen from other providers
#: map to the same names.
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
    "sending": "sending",
    "submitted": "submitted",
    "failed": "failed",
    "rejected": "rejected",
    "opt-out": "opt-out",
    "opt-in": "opt-in",
}

#: Events that put the recipient on the local suppression list (a bounce only when hard).
SUPPRESSING_EVENTS = frozenset({"bounce", "spam"})

#: Fields that always hold a list, even when a form body repeats them once.
_LIST_FIELDS = frozenset({"recipients"})
#: Keys never copied into ``raw``: anything that looks like a credential.
#: Events that settle a recipient's fate -> the fate (bounces: by their ``bounce`` type).
_FATES = {
    "delivered": "delivered",
    "spam": "spam",
    "unsubscribe": "unsubscribed",
    "reject": "rejected",
}
_SENSITIVE = ("auth", "password", "passwd", "secret", "token", "api_key", "api-key")
_MAX_EVENT_NAME = 64
_MAX_TEXT = 1000
_MAX_KEYS = 64
_MAX_ITEMS = 100
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


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        # A form body may flatten a list into "a@x, b@y".
        items: list[Any] = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        return []
    return [t for t in (_text(v) for v in items[:_MAX_ITEMS]) if t]


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
    email_id = _text(payload.get("email_id"))
    sms_id = _text(payload.get("message_id"))
    destination = _text(payload.get("destination"))
    sms = email_id is None and (sms_id is not None or destination is not None)
    return {
        "event": EVENT_NAMES.get(provider.lower(), provider),
        "provider_event": provider,
        "channel": "sms" if sms else "email",
        "email_id": email_id,
        "message_id": sms_id if sms else None,
        "rcpt": _text(payload.get("rcpt")) or (destination if sms else None),
        "recipients": _texts(payload.get("recipients")),
        "time": _text(payload.get("time")),
        "sendtime": _text(payload.get("sendtime")),
        "bounce": _bounce_type(payload.get("bounce")),
        "sender": _text(payload.get("sender"))
        or _text(payload.get("from_address"))
        or _text(payload.get("from")),
        "subject": _text(payload.get("subject")),
        "received_at": received_at,
        "raw": _trim(dict(payload)),
    }


# -- what the task needs ----------------------------------------------------------------------


def digest(event: Mapping[str, Any]) -> str:
    """The identity of an event: the same event posted twice (a provider retry, two
    webhooks, JSON and form) has the same digest, so the record keeps it once."""
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
    encoded = json.dumps(identity, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def fate_of(event: Mapping[str, Any]) -> str | None:
    """What an event tells about its recipient's fate (for the batch's ledger), if anything."""
    if event.get("channel") != "email":
        return None
    name = event.get("event")
    if name == "bounce":
        return "hard-bounced" if event.get("bounce") == "hard" else "soft-bounced"
    return _FATES.get(str(name))


def should_suppress(event: Mapping[str, Any]) -> str | None:
    """The address to add to the suppression set for this event, if any."""
    name = event.get("event")
    if event.get("channel") != "email" or name not in SUPPRESSING_EVENTS:
        return None
    if name == "bounce" and event.get("bounce") != "hard":
        return None
    rcpt = address_key(str(event.get("rcpt") or ""))
    return rcpt if "@" in rcpt else None
