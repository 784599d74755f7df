"""The read-only SMTP2GO endpoints: statistics, activity search and SMS history.

Everything is computed from what the sandbox accepted, so a client's reports and sweeps
can be checked against the sends it made. Percentages are strings, as the real API
writes them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from outbox.sandbox.handlers import Handler, Sandbox, decode_token, encode_token, page_size
from outbox.sandbox.state import EmailRecord, SandboxState
from outbox.sandbox.validation import invalid, optional_str, parse_datetime, string_list
from outbox.sandbox.webhooks import iso

__all__ = ["ACTIVITY_EVENTS", "REPORTS", "REQUEST_ID_IN_DATA"]

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
#: Endpoints whose answer carries ``request_id`` inside ``data`` (a real-API quirk).
REQUEST_ID_IN_DATA = frozenset({"sms/view-received", "sms/view-sent"})
_SMS_COST_PER_UNIT = 0.05


def _percent(part: int, whole: int) -> str:
    return f"{(100.0 * part / whole) if whole else 0.0:.2f}"


def _midnight(days_ago: int = 0) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def _window(body: dict[str, Any], *, default_days: int | None) -> tuple[float, float]:
    """``start_date`` inclusive, ``end_date`` exclusive, as epoch seconds."""
    if body.get("start_date"):
        start = parse_datetime(body["start_date"], "start_date").timestamp()
    elif default_days is None:
        start = float("-inf")
    else:
        start = _midnight(default_days).timestamp()
    end = float("inf")
    if body.get("end_date"):
        end = parse_datetime(body["end_date"], "end_date").timestamp()
    return start, end


class _Totals:
    """Per-recipient counts over accepted emails (SMTP2GO counts one email per recipient)."""

    __slots__ = ("bounces", "bytes", "emails", "rejects")

    def __init__(self, records: list[EmailRecord]) -> None:
        self.emails = sum(len(r.recipients) for r in records)
        self.rejects = sum(len(r.rejected) for r in records)
        self.bounces = sum(len(r.bounced) for r in records)
        self.bytes = sum(r.size * len(r.recipients) for r in records)


def _recent(state: SandboxState, days: int = 30) -> list[EmailRecord]:
    since = time.time() - days * 86400
    return [r for r in state.emails if r.time >= since]


def _cycle(state: SandboxState) -> dict[str, Any]:
    start = _midnight().replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    used = _Totals([r for r in state.emails if r.time >= start.timestamp()]).emails
    return {
        "cycle_start": start.isoformat(sep=" "),
        "cycle_end": end.isoformat(sep=" "),
        "cycle_used": used,
        "cycle_remaining": max(0, state.cycle_max - used),
        "cycle_max": state.cycle_max,
    }


def stats_email_bounces(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        "emails": totals.emails,
        "rejects": totals.rejects,
        "softbounces": 0,
        "hardbounces": totals.bounces,
        "bounce_percent": _percent(totals.bounces, totals.emails),
    }


def stats_email_cycle(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    return _cycle(sb.state)


def stats_email_spam(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    totals = _Totals(_recent(sb.state))
    return {"emails": totals.emails, "rejects": totals.rejects, "spams": 0, "spam_percent": "0.00"}


def stats_email_unsubs(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        "emails": totals.emails,
        "rejects": totals.rejects,
        "unsubscribes": 0,
        "unsubscribe_percent": "0.00",
    }


def stats_email_summary(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        **_cycle(sb.state),
        "email_count": totals.emails,
        "rejects": totals.rejects,
        "bounce_rejects": totals.rejects,
        "softbounces": 0,
        "hardbounces": totals.bounces,
        "bounce_percent": _percent(totals.bounces, totals.emails),
        "spam_emails": 0,
        "spam_rejects": 0,
        "spam_percent": "0.00",
        "unsubscribes": 0,
        "unsubscribe_percent": "0.00",
        "opens": 0,
        "clicks": 0,
    }


def stats_email_history(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    group_by = body.get("group_by", "email_address")
    if group_by not in ("email_address", "username", "domain", "subaccount"):
        raise invalid("group_by", "group_by must be email_address, username, domain or subaccount")
    start, end = _window(body, default_days=30)
    groups: dict[str, list[EmailRecord]] = {}
    for record in sb.state.emails:
        if start <= record.time < end:
            if group_by == "email_address":
                key = record.from_address
            elif group_by == "domain":
                key = record.from_address.rpartition("@")[2]
            elif group_by == "username":
                key = "api"
            else:
                key = "Master account"
            groups.setdefault(key, []).append(record)
    history = []
    all_totals = _Totals([r for records in groups.values() for r in records])
    for key, records in sorted(groups.items()):
        totals = _Totals(records)
        history.append(
            {
                group_by: key,
                "lastip": "127.0.0.1",
                "used": totals.emails,
                "bytecount": totals.bytes,
                "avgsize": totals.bytes / totals.emails if totals.emails else 0,
                "bounces": totals.bounces,
                "clicks": 0,
                "opens": 0,
                "rejects": totals.rejects,
                "spam": 0,
                "unsubscribes": 0,
                "bounce_percent": round(100.0 * totals.bounces / totals.emails, 2)
                if totals.emails
                else 0,
            }
        )
    return {
        "count": all_totals.emails,
        "bounce_percent_total": round(100.0 * all_totals.bounces / all_totals.emails, 2)
        if all_totals.emails
        else 0,
        "history": history,
    }


# -- activity -----------------------------------------------------------------------------


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
    bounced = set(record.bounced)
    for rcpt in record.recipients:
        yield "processed", rcpt
        yield ("hard-bounced" if rcpt in bounced else "delivered"), rcpt
    for rcpt in record.rejected:
        yield "rejected", rcpt


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
        "reason": "suppressed" if event == "rejected" else "",
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


def activity_search(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    """Events per recipient: ``processed`` then ``delivered`` / ``hard-bounced``, or ``rejected``.

    Oldest first, so an offset-based ``continue_token`` stays valid while new sends arrive.
    """
    start, end = _window(body, default_days=0)
    limit = page_size(body, "limit", default=100, maximum=1000)
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


def sms_view_sent(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    start, end = _window(body, default_days=7)
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
    return {"request_id": request_id, "messages": messages}


def sms_view_received(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    start, end = _window(body, default_days=7)
    messages = [
        {k: v for k, v in m.items() if k != "time"}
        for m in sb.state.sms_received
        if start <= m["time"] < end
    ]
    return {"request_id": request_id, "messages": messages}


def sms_summary(sb: Sandbox, body: dict[str, Any], request_id: str) -> Any:
    start, end = _window(body, default_days=0)
    records = [r for r in sb.state.sms if start <= r.time < end]
    messages = sum(len(r.destination) for r in records)
    units = sum(r.units * len(r.destination) for r in records)
    return {
        "total_messages": messages,
        "total_units": units,
        "total_cost": round(units * _SMS_COST_PER_UNIT, 3),
    }


REPORTS: dict[str, Handler] = {
    "stats/email_summary": stats_email_summary,
    "stats/email_bounces": stats_email_bounces,
    "stats/email_cycle": stats_email_cycle,
    "stats/email_history": stats_email_history,
    "stats/email_spam": stats_email_spam,
    "stats/email_unsubs": stats_email_unsubs,
    "activity/search": activity_search,
    "sms/view-sent": sms_view_sent,
    "sms/view-received": sms_view_received,
    "sms/summary": sms_summary,
}
