"""The suppression endpoints: ``suppression/add``, ``view`` and ``remove``.

The real API's fields (OpenAPI 3.0.4): ``email_address`` is an address or a whole
domain; ``view`` filters by address, reasons, recipients, ``start_date`` (inclusive) and
``end_date`` (exclusive) and pages with ``continue_token``; ``remove`` needs
``email_address`` and ``reasons``.
"""

from __future__ import annotations

import re
from typing import Any

from outbox.sandbox.common import (
    DEFAULT_PAGE,
    Call,
    Handler,
    Sandbox,
    decode_token,
    encode_token,
    page_size,
)
from outbox.sandbox.validation import address, invalid, optional_str, parse_datetime, string_list

__all__ = ["SUPPRESSIONS", "SUPPRESSION_REASONS"]

_DOMAIN = re.compile(r"^[^\s@<>(),;:\"\[\]\\.]+(?:\.[^\s@<>(),;:\"\[\]\\.]+)+$")
SUPPRESSION_REASONS = frozenset({"manual", "spam", "unsubscribe", "bounce", "compliance"})


def _suppression_target(body: dict[str, Any]) -> str:
    value = body.get("email_address")
    if not isinstance(value, str) or not value.strip():
        raise invalid("email_address", "email_address is required (an address or a domain)")
    value = value.strip()
    if "@" in value:
        return address(value, "email_address")
    if not _DOMAIN.match(value):
        raise invalid("email_address", f"{value!r} is neither an email address nor a domain")
    return value


def suppression_add(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    target = _suppression_target(body)
    description = optional_str(body, "block_description") or ""
    sb.state.suppress(target, description, "manual")
    return {"added": True, "block_description": description, "email_address": target}


def suppression_view(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    exact = optional_str(body, "email_address")
    reasons = set(string_list(body, "reasons") or [])
    reasons.update(string_list(body, "suppression_types") or [])
    for single in ("reason", "suppression_type"):
        value = optional_str(body, single)
        if value:
            reasons.add(value)
    recipients = [r.lower() for r in string_list(body, "recipients") or []]
    recipient = optional_str(body, "recipient")
    if recipient:
        recipients.append(recipient.lower())
    wildcard = (optional_str(body, "wildcard") or "").lower()
    sort = body.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise invalid("sort", "sort must be asc or desc")
    size = page_size(body, "limit", default=DEFAULT_PAGE, maximum=1000)
    offset = decode_token(body)
    # Only when given: the documented defaults of the two dates contradict each other.
    start = (
        parse_datetime(body["start_date"], "start_date").timestamp()
        if body.get("start_date")
        else float("-inf")
    )
    end = (
        parse_datetime(body["end_date"], "end_date").timestamp()
        if body.get("end_date")
        else float("inf")
    )

    def matches(entry: dict[str, Any]) -> bool:
        if not start <= entry["added"] < end:
            return False
        target = entry["email_address"].lower()
        if exact is not None and target != exact.strip().lower():
            return False
        if reasons and entry["reason"] not in reasons:
            return False
        if recipients and not any(r in target for r in recipients):
            return False
        return not wildcard or wildcard in target

    found = sorted(
        (e for entries in sb.state.suppressions.values() for e in entries.values() if matches(e)),
        key=lambda e: e["added"],
        reverse=sort == "desc",
    )
    page = found[offset : offset + size]
    more = offset + size < len(found)
    return {
        "results": [{k: v for k, v in e.items() if k != "added"} for e in page],
        "total_results": len(found),
        "continue_token": encode_token(offset + size) if more else None,
    }


def suppression_remove(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    target = _suppression_target(body)
    reasons = string_list(body, "reasons")
    if not reasons:
        raise invalid("reasons", "reasons is required: the block types to remove")
    unknown = sorted(set(reasons) - SUPPRESSION_REASONS)
    if unknown:
        raise invalid("reasons", f"unknown reasons: {', '.join(unknown)}")
    answer = [
        {"email_address": target, "reason": reason, "removed": sb.state.unsuppress(target, reason)}
        for reason in reasons
    ]
    return {"suppressions": answer}


SUPPRESSIONS: dict[str, Handler] = {
    "suppression/add": suppression_add,
    "suppression/view": suppression_view,
    "suppression/remove": suppression_remove,
}
