"""Validating ``sms/send``: ``destination`` (E.164 numbers, at most 100) and ``content``.

The reference's ``{to, message}`` is refused, naming ``destination``, as the real API
(OpenAPI 3.0.4: ``required: [destination, content]``) would refuse it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from outbox.sandbox.validation import MAX_RECIPIENTS, invalid

__all__ = ["SmsDraft", "parse_sms", "sms_units"]

_E164 = re.compile(r"^\+?[1-9]\d{6,14}$")
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(slots=True)
class SmsDraft:
    destination: list[str]
    content: str
    sender: str | None
    units: int


def parse_sms(body: dict[str, Any]) -> SmsDraft:
    """Validate ``sms/send``; the reference's ``{to, message}`` is refused, naming destination."""
    destination = body.get("destination")
    if destination is None:
        if "to" in body or "message" in body:
            raise invalid(
                "destination",
                "destination is required (sms/send takes destination and content, not to/message)",
            )
        raise invalid("destination", "destination is required")
    if not isinstance(destination, list) or not destination:
        raise invalid("destination", "destination must be a non-empty array of numbers")
    if len(destination) > MAX_RECIPIENTS:
        raise invalid("destination", f"at most {MAX_RECIPIENTS} numbers per request")
    for number in destination:
        if not isinstance(number, str) or not _E164.match(number):
            raise invalid("destination", f"{number!r} is not an E.164 number")
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise invalid("content", "content is required")
    sender = body.get("sender")
    if sender is not None and (not isinstance(sender, str) or not _E164.match(sender)):
        raise invalid("sender", "sender must be an E.164 number")
    return SmsDraft(list(destination), content, sender, sms_units(content))


def sms_units(content: str) -> int:
    """Billing units: 160 GSM-7 characters in one, 153 per part beyond; 70/67 for UCS-2."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in content):
        length = sum(2 if c in _GSM_EXTENDED else 1 for c in content)
        single, part = 160, 153
    else:
        length, single, part = len(content), 70, 67
    return 1 if length <= single else math.ceil(length / part)
