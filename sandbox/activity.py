"""``activity/search`` and the SMS history (``sms/view-sent``, ``view-received``, ``summary``).

Computed from what the sandbox accepted. Activity events are per recipient, with the
activity names (``processed``, ``delivered``, ``hard-bounced``, ``soft-bounced``,
``rejected``, ``opened``, ``clicked``, ``spam``, ``unsubscribed``, ``resubscribed``:
OpenAPI 3.0.4 ``event_types``), not the webhook names. The endpoint's own limit (60 a
minute) is enforced before it is reached (:mod:`~outbox.sandbox.limits`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from outbox.sandbox.common import Call, Handler, Sandbox, decode_token, encode_token, page_size
from outbox.sandbox.records import EmailRecord
from outbox.sandbox.reports import window
from outbox.sandbox.validation import invalid, optional_str, string_list
from outbox.sandbox.webhook_bodies import iso

__all__ = ["ACTIVITY", "ACTIVITY_EVENTS", "REQUEST_ID_IN_DATA"]

#: The event names ``activity/search`` reports and filters on (not the webhook names).
ACTIVITY_EVENTS = frozenset(
    {
        "processed",
        "soft-bounced",
        "hard-bounced",
        "rejected",
        "spam",
        "delivered",
        "unsubscribed",
        "resubscribed",
        "opened",
        "clicked",
    }
)
#: Webhook name -> activity name, for the events after delivery.
_ACTIVITY_NAMES = {
    "open": "opened",
    "click": "clicked",
    "spam": "spam",
    "unsubscribe": "unsubscribed",
    "resubscribe": "resubscribed",
}
#: Endpoints whose answer carries ``request_id`` inside ``data`` (a real-API quirk).
REQUEST_ID_IN_DATA = frozenset({"sms/view-received", "sms/view-sent"})
_SMS_COST_PER_UNIT = 0.05


def _email_ids(body: dict[str, Any]) -> set[str] | None:
    ids: set[str] = set()
    given = False
    for name in ("email_id", "search_email_id"):
        value = body.get(name)
        if value is None:
            continue
        given = True
        if isinstance(value, str):
            ids.add(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            ids.update(value)
        else:
            raise invalid(name, f"{name} must be a string or an array of strings")
    return ids if given else None


def _events(record: EmailRecord) -> Iterator[tuple[str, str]]:
    """``(activity name, recipient)`` in the order they happened."""
    bounced = set(record.bounced)
    for rcpt in record.recipients:
        yield "processed", rcpt
        yield ("hard-bounced" if rcpt in bounced else "delivered"), rcpt
    for rcpt in record.rejected:
        yield "rejected", rcpt
    for later in record.events:
        if later.event == "bounce":
            yield ("soft-bounced" if later.bounce == "soft" else "hard-bounced"), later.rcpt
        elif later.event in _ACTIVITY_NAMES:
            yield _ACTIVITY_NAMES[later.event], later.rcpt


def _raw_headers(record: EmailRecord) -> str:
    lines = [
        f"From: {record.sender}",
        f"To: {', '.join(record.to)}",
        *([f"Cc: {', '.join(record.cc)}"] if record.cc else []),
        f"Subject: {record.subject}",
        f"Message-ID: {record.message_id}",
        *(f"{name}: {value}" for name, value in record.custom_headers.items()),
    ]
    return "\r\n".join(lines)


def _activity_event(
    record: EmailRecord,
    event: str,
    rcpt: str,
    header_names: list[str] | None,
    include_headers: bool,
) -> dict[str, Any]:
    if header_names is None:
        selected = dict(record.custom_headers)
    else:
        lowered = {k.lower(): v for k, v in record.custom_headers.items()}
        selected = {n: lowered[n.lower()] for n in header_names if n.lower() in lowered}
    reply_to = next((v for k, v in record.custom_headers.items() if k.lower() == "reply-to"), "")
    if event == "delivered":
        smtp_response = "250 2.0.0 OK: queued"
    elif event == "hard-bounced":
        smtp_response = f"550 5.1.1 <{rcpt}>: Recipient address rejected"
    else:
        smtp_response = ""
    return {
        "event": event,
        "email_id": record.email_id,
        "date": iso(record.time),
        "sender": record.from_address,
        "sender_full": record.sender,
        "from": record.from_address,
        "recipient": rcpt,
        "recipients": [*record.recipients, *record.rejected],
        "to": ", ".join(record.to),
        "cc": ", ".join(record.cc),
        "bcc": ", ".join(record.bcc),
        "subject": record.subject,
        "username": "api",
        "subaccount_name": "Master account",
        "reply_to": reply_to,
        "smtp_response": smtp_response,
        "reason": record.reject_reason if event == "rejected" else "",
        "host": "127.0.0.1",
        "error": "",
        "email_client": {},
        "metadata": {},
        "outbound_ip": "127.0.0.1",
        "byte_size": record.size,
        # The real API fills ``headers`` (the raw block) only when asked; otherwise the
        # sandbox lists the custom headers there too, which is handy when reading tests.
        "headers": _raw_headers(record) if include_headers else dict(record.custom_headers),
        "custom_headers": selected,
    }


def activity_search(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    """Events per recipient: ``processed`` then ``delivered`` / ``hard-bounced``, or ``rejected``.

    Oldest first, so an offset-based ``continue_token`` stays valid while new sends arrive.
    """
    start, end = window(body, default_days=0)
    # The Activity guide: at most 100 a page; the OpenAPI says 1,000. The smaller is
    # kept, so a client that works here works under either.
    limit = page_size(body, "limit", default=100, maximum=100)
    offset = decode_token(body)
    types = string_list(body, "event_types")
    if types is not None:
        unknown = sorted(set(types) - ACTIVITY_EVENTS)
        if unknown:
            raise invalid("event_types", f"unknown event_types: {', '.join(unknown)}")
    wanted = set(types) if types else None
    ids = _email_ids(body)
    search = [t.strip().lower() for t in (optional_str(body, "search") or "").split("|")]
    search = [t for t in search if t]
    subject = (optional_str(body, "search_subject") or "").lower()
    sender = (optional_str(body, "search_sender") or "").lower()
    recipient = (optional_str(body, "search_recipient") or "").lower()
    header_names = string_list(body, "custom_headers")
    only_latest = bool(body.get("only_latest", False)) or bool(body.get("only_latest_by_sent"))
    include_headers = bool(body.get("include_headers", False))

    matched: list[tuple[EmailRecord, str, str]] = []
    for record in sb.state.emails:
        if not start <= record.time < end:
            continue
        if ids is not None and record.email_id not in ids:
            continue
        if subject and subject not in record.subject.lower():
            continue
        if sender and sender not in record.from_address.lower():
            continue
        for event, rcpt in _events(record):
            if wanted is not None and event not in wanted:
                continue
            if recipient and recipient not in rcpt.lower():
                continue
            if search:
                haystack = " ".join(
                    (record.from_address, rcpt, record.subject, record.email_id)
                ).lower()
                if not any(term in haystack for term in search):
                    continue
            matched.append((record, event, rcpt))
    if only_latest:
        latest: dict[tuple[str, str], tuple[EmailRecord, str, str]] = {}
        for item in matched:
            latest[(item[0].email_id, item[2])] = item
        matched = list(latest.values())
    page = matched[offset : offset + limit]
    more = offset + limit < len(matched)
    return {
        "events": [
            _activity_event(r, e, rcpt, header_names, include_headers) for r, e, rcpt in page
        ],
        "total_events": len(matched),
        "continue_token": encode_token(offset + limit) if more else None,
    }


# -- SMS history --------------------------------------------------------------------------


def sms_view_sent(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    start, end = window(body, default_days=7)
    messages = [
        {
            "id": message_id,
            "timestamp": iso(record.time),
            "username": "api",
            "sender": record.sender or "shared",
            "sender_email": "",
            "destination_address": number,
            "format": "SMS",
            "status": "Message sent",
            "content": record.content,
            "units": record.units,
        }
        for record in sb.state.sms
        if start <= record.time < end
        for number, message_id in zip(record.destination, record.message_ids, strict=True)
    ]
    return {"request_id": call.request_id, "messages": messages}


def sms_view_received(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    start, end = window(body, default_days=7)
    messages = [
        {k: v for k, v in m.items() if k != "time"}
        for m in sb.state.sms_received
        if start <= m["time"] < end
    ]
    return {"request_id": call.request_id, "messages": messages}


def sms_summary(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    start, end = window(body, default_days=0)
    records = [r for r in sb.state.sms if start <= r.time < end]
    messages = sum(len(r.destination) for r in records)
    units = sum(r.units * len(r.destination) for r in records)
    return {
        "total_messages": messages,
        "total_units": units,
        "total_cost": round(units * _SMS_COST_PER_UNIT, 3),
    }


ACTIVITY: dict[str, Handler] = {
    "activity/search": activity_search,
    "sms/view-sent": sms_view_sent,
    "sms/view-received": sms_view_received,
    "sms/summary": sms_summary,
}
