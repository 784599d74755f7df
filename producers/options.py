"""The options every ``send_*`` takes, checked in one place.

``idempotency_key``, ``send_at``, ``callback``, ``lane`` and ``tenant`` are keyword-only
in every producer call (the message's own fields come first), and each is checked here
so that a bad one is named with the message's own bad fields, in one
:class:`~outbox.core.errors.ValidationError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from celery.canvas import Signature

from outbox.core.windows import TENANT_PATTERN

__all__ = ["Lane", "Options", "check_options"]

#: The two lanes a chunk waits in when the limit is saturated: transactional goes first.
Lane = Literal["transactional", "bulk"]
LANES: tuple[Lane, ...] = ("transactional", "bulk")

#: The longest idempotency key (it is part of a Redis key).
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Options:
    idempotency_key: str | None = None
    #: Epoch seconds the send is due (``None``: now).
    send_at: float | None = None
    #: A Celery signature, as a dict.
    callback: dict[str, Any] | None = None
    #: ``None``: by the send's size (``OUTBOX_BULK_THRESHOLD``).
    lane: Lane | None = None
    tenant: str | None = None


def _send_at(value: datetime | float | None, retention: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must be timezone-aware")
        when = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    else:
        raise ValueError("must be a timezone-aware datetime or epoch seconds")
    if not math.isfinite(when):
        raise ValueError("must be a finite time")
    # A record lives for the retention: a send due later would find it gone.
    if when - time.time() > retention:
        raise ValueError(
            f"more than OUTBOX_RETENTION ({retention} s) ahead; the record would expire "
            "before it is due"
        )
    return when


def _callback(value: Signature | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("task"), str)
        or not value["task"]
    ):
        raise ValueError("must be a Celery signature")
    return dict(Signature(value))


def _key(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY:
        raise ValueError(f"must be a string of 1 to {MAX_KEY} characters")
    return value


def _lane(value: str | None) -> Lane | None:
    if value is None:
        return None
    for lane in LANES:
        if value == lane:
            return lane
    raise ValueError("must be 'transactional' or 'bulk'")


def _tenant(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not TENANT_PATTERN.match(value):
        raise ValueError(
            "must be 1 to 64 letters, digits or '_', '.', ':', '-', starting with a letter or digit"
        )
    return value


def check_options(
    errors: dict[str, str],
    *,
    idempotency_key: str | None,
    send_at: datetime | float | None,
    callback: Signature | Mapping[str, Any] | None,
    retention: int,
    lane: str | None = None,
    tenant: str | None = None,
) -> Options:
    """The options, checked; each bad one is added to ``errors`` under its own name."""
    checked: dict[str, Any] = {}
    for name, check in (
        ("idempotency_key", lambda: _key(idempotency_key)),
        ("send_at", lambda: _send_at(send_at, retention)),
        ("callback", lambda: _callback(callback)),
        ("lane", lambda: _lane(lane)),
        ("tenant", lambda: _tenant(tenant)),
    ):
        try:
            checked[name] = check()
        except ValueError as exc:
            errors[name] = str(exc)
    return Options(**checked)
