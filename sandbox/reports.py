"""The statistics endpoints (``stats/*``), computed from what the sandbox accepted.

So a client's reports can be checked against the sends it made. Emails are counted per
recipient, as the account's quota is: "each recipient will count as one email from your
plan's monthly quota" (getting-started page); a rejected recipient (suppressed) is not
sent and is counted in ``rejects`` instead. Percentages are strings, as the real API
writes them. The helpers for dates are shared with :mod:`~outbox.sandbox.activity`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from outbox.sandbox.common import Call, Handler, Sandbox
from outbox.sandbox.records import EmailRecord
from outbox.sandbox.state import SandboxState
from outbox.sandbox.validation import invalid, parse_datetime

__all__ = ["REPORTS", "midnight", "window"]


def _percent(part: int, whole: int) -> str:
    return f"{(100.0 * part / whole) if whole else 0.0:.2f}"


def midnight(days_ago: int = 0) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def window(body: dict[str, Any], *, default_days: int | None) -> tuple[float, float]:
    """``start_date`` inclusive, ``end_date`` exclusive, as epoch seconds."""
    if body.get("start_date"):
        start = parse_datetime(body["start_date"], "start_date").timestamp()
    elif default_days is None:
        start = float("-inf")
    else:
        start = midnight(default_days).timestamp()
    end = float("inf")
    if body.get("end_date"):
        end = parse_datetime(body["end_date"], "end_date").timestamp()
    return start, end


class _Totals:
    """Per-recipient counts over accepted emails (SMTP2GO counts one email per recipient)."""

    __slots__ = (
        "bounces",
        "bytes",
        "clicks",
        "emails",
        "opens",
        "rejects",
        "softbounces",
        "spam",
        "unsubscribes",
    )

    def __init__(self, records: list[EmailRecord]) -> None:
        self.emails = sum(len(r.recipients) for r in records)
        self.rejects = sum(len(r.rejected) for r in records)
        self.bytes = sum(r.size * len(r.recipients) for r in records)
        later = [e for r in records for e in r.events]
        self.bounces = sum(len(r.bounced) for r in records) + sum(
            e.event == "bounce" and e.bounce != "soft" for e in later
        )
        self.softbounces = sum(e.event == "bounce" and e.bounce == "soft" for e in later)
        self.opens = sum(e.event == "open" for e in later)
        self.clicks = sum(e.event == "click" for e in later)
        self.spam = sum(e.event == "spam" for e in later)
        self.unsubscribes = sum(e.event == "unsubscribe" for e in later)


def _recent(state: SandboxState, days: int = 30) -> list[EmailRecord]:
    since = time.time() - days * 86400
    return [r for r in state.emails if r.time >= since]


def _cycle(state: SandboxState) -> dict[str, Any]:
    """This month's use: recipients accepted for delivery, each "one email from your
    plan's monthly quota"; rejected recipients are not sent, so not counted."""
    start = midnight().replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    used = _Totals([r for r in state.emails if r.time >= start.timestamp()]).emails
    return {
        "cycle_start": start.isoformat(sep=" "),
        "cycle_end": end.isoformat(sep=" "),
        "cycle_used": used,
        "cycle_remaining": max(0, state.cycle_max - used),
        "cycle_max": state.cycle_max,
    }


def stats_email_bounces(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        "emails": totals.emails,
        "rejects": totals.rejects,
        "softbounces": totals.softbounces,
        "hardbounces": totals.bounces,
        "bounce_percent": _percent(totals.bounces + totals.softbounces, totals.emails),
    }


def stats_email_cycle(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    return _cycle(sb.state)


def stats_email_spam(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        "emails": totals.emails,
        "rejects": totals.rejects,
        "spams": totals.spam,
        "spam_percent": _percent(totals.spam, totals.emails),
    }


def stats_email_unsubs(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        "emails": totals.emails,
        "rejects": totals.rejects,
        "unsubscribes": totals.unsubscribes,
        "unsubscribe_percent": _percent(totals.unsubscribes, totals.emails),
    }


def stats_email_summary(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    totals = _Totals(_recent(sb.state))
    return {
        **_cycle(sb.state),
        "email_count": totals.emails,
        "rejects": totals.rejects,
        "bounce_rejects": totals.rejects,
        "softbounces": totals.softbounces,
        "hardbounces": totals.bounces,
        "bounce_percent": _percent(totals.bounces + totals.softbounces, totals.emails),
        "spam_emails": totals.spam,
        "spam_rejects": 0,
        "spam_percent": _percent(totals.spam, totals.emails),
        "unsubscribes": totals.unsubscribes,
        "unsubscribe_percent": _percent(totals.unsubscribes, totals.emails),
        "opens": totals.opens,
        "clicks": totals.clicks,
    }


def stats_email_history(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    group_by = body.get("group_by", "email_address")
    if group_by not in ("email_address", "username", "domain", "subaccount"):
        raise invalid("group_by", "group_by must be email_address, username, domain or subaccount")
    start, end = window(body, default_days=30)
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
                "clicks": totals.clicks,
                "opens": totals.opens,
                "rejects": totals.rejects,
                "spam": totals.spam,
                "unsubscribes": totals.unsubscribes,
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


REPORTS: dict[str, Handler] = {
    "stats/email_summary": stats_email_summary,
    "stats/email_bounces": stats_email_bounces,
    "stats/email_cycle": stats_email_cycle,
    "stats/email_history": stats_email_history,
    "stats/email_spam": stats_email_spam,
    "stats/email_unsubs": stats_email_unsubs,
}
