"""A rate limit as the account states it: at most N requests in any P seconds.

``OUTBOX_RATE_LIMIT`` names one window or several (``10/s,500/m,20000/h``); the limiter
(:mod:`outbox.core.store.limits`) enforces each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "TENANT_PATTERN",
    "Window",
    "parse_tenant_limits",
    "parse_tenant_weights",
    "parse_windows",
]

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


#: What a tenant's name may be: short, and safe inside a Redis key and a metrics label.
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _pairs(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not TENANT_PATTERN.match(name):
            raise ValueError(f"not a tenant {what}: {part.strip()!r} (expected e.g. 'acme=3')")
        out.append((name, value.strip()))
    return out


def parse_tenant_weights(text: str) -> dict[str, float]:
    """``"acme=3,globex=1"``: each tenant's share within a lane (default 1)."""
    weights = {}
    for name, value in _pairs(text, "weight"):
        try:
            weight = float(value)
        except ValueError:
            weight = 0.0
        if not weight > 0:
            raise ValueError(f"not a tenant weight: {name}={value!r} (a number above 0)")
        weights[name] = weight
    return weights


def parse_tenant_limits(text: str) -> dict[str, tuple[Window, ...]]:
    """``"acme=5/s,globex=100/m"`` (one window each; ``acme=5/s;100/m`` for several)."""
    return {name: parse_windows(value.replace(";", ",")) for name, value in _pairs(text, "limit")}
