"""A rate limit as the account states it: at most N requests in any P seconds.

``OUTBOX_RATE_LIMIT`` names one window or several (``10/s,500/m,20000/h``); the limiter
(:mod:`outbox.worker.store.limits`) enforces each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Window", "parse_windows"]

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$")
_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` requests in any ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        for unit, seconds in (("s", 1), ("m", 60), ("h", 3600)):
            if self.period == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.period:g}s"


def parse_windows(text: str) -> tuple[Window, ...]:
    """``"10/s"``, ``"600/m"``, ``"5/10s"`` or several at once: ``"10/s,500/m,20000/h"``."""
    windows = []
    for part in text.split(","):
        match = _RATE_RE.match(part.lower())
        if not match or match[3] not in _UNIT_SECONDS:
            raise ValueError(
                f"not a rate: {part.strip()!r} (expected e.g. '10/s', '600/m', '5/10s', "
                "or several separated by commas)"
            )
        count, multiplier, unit = match.groups()
        period = float(multiplier or 1) * _UNIT_SECONDS[unit]
        if int(count) < 1 or period <= 0:
            raise ValueError(f"not a rate: {part.strip()!r} (it needs a count and a period)")
        windows.append(Window(int(count), period))
    return tuple(sorted(set(windows), key=lambda w: (w.period, w.count)))
