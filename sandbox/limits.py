"""Rate limits and the timeouts that going over them earns, as the real service has them.

The real rate-limiting page (https://developers.smtp2go.com/docs/rate-limiting) says: "In
the event that your interaction with the API results in what we deem to be too many
requests or error responses, the IP address from which the requests originated will be
timed out for an indeterminate amount of time, no less than 1 minute. You will receive a
``429 Too Many Requests`` response code during this time." So here:

* :class:`RateLimiter` counts requests in an exact sliding window (the account's limit,
  ``--rate``, over every client; ``activity/search`` has its own).
* Going over it, or getting more 4xx answers than ``--error-limit`` allows, starts a
  timeout of ``--penalty`` seconds for the client's IP (:class:`Timeouts`). Requests
  during the timeout are answered 429 and neither counted nor extend it.
* Hints (``X-RateLimit-*``, ``Retry-After``) are sent only when asked for
  (``--rate-headers``): the current docs and the OpenAPI 3.0.4 promise none.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from outbox.sandbox.config import Rate

__all__ = [
    "ACTIVITY_SCOPE",
    "API_SCOPE",
    "Decision",
    "ErrorWindows",
    "RateLimiter",
    "Timeout",
    "Timeouts",
    "limit_headers",
    "retry_after_seconds",
]

#: A timeout that refuses every ``/v3`` request of the client.
API_SCOPE = "api"
#: A timeout earned on ``activity/search``'s own limit: refuses only that endpoint.
ACTIVITY_SCOPE = "activity/search"


class Decision(NamedTuple):
    """One limiter verdict and the numbers the ``X-RateLimit-*`` headers report."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window has room again.
    reset: float


class RateLimiter:
    """A sliding-window log: at most ``count`` events in any ``period`` seconds.

    Exact and deterministic (a burst of ``count`` passes, the next is refused), which is
    what tests of a client's own limiter need; the log never holds more than ``count``
    timestamps, so each check is O(1) amortised.
    """

    __slots__ = ("_log", "count", "period")

    def __init__(self, rate: Rate) -> None:
        self.count = rate.count
        self.period = rate.period
        self._log: deque[float] = deque()

    def acquire(self, now: float) -> Decision:
        log = self._log
        horizon = now - self.period
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) < self.count:
            log.append(now)
            reset = log[0] + self.period - now
            return Decision(True, self.count, self.count - len(log), reset)
        return Decision(False, self.count, 0, log[0] + self.period - now)

    def peek(self, now: float) -> Decision:
        """The current numbers without spending a slot (for answers refused otherwise)."""
        log = self._log
        live = sum(1 for t in log if t > now - self.period)
        reset = log[-live] + self.period - now if live else 0.0
        return Decision(live < self.count, self.count, self.count - live, reset)

    def __str__(self) -> str:
        return str(Rate(self.count, self.period))


class ErrorWindows:
    """Per-client counts of error answers in a sliding window (``--error-limit``)."""

    __slots__ = ("_by_client", "rate")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._by_client: dict[str, RateLimiter] = {}

    def over(self, client: str, now: float) -> bool:
        """Count one error answer for ``client``; true when it went over the limit."""
        limiter = self._by_client.get(client)
        if limiter is None:
            limiter = self._by_client[client] = RateLimiter(self.rate)
        return not limiter.acquire(now).allowed

    def __str__(self) -> str:
        return str(self.rate)


@dataclass(slots=True)
class Timeout:
    """One client timed out: every request in ``scope`` refused until ``until``."""

    client: str
    scope: str
    #: ``rate``, ``errors`` or ``activity_rate``: what the client went over.
    reason: str
    #: ``time.monotonic()`` bounds, for the checks.
    started: float
    until: float

    def as_dict(self, now: float) -> dict[str, Any]:
        """For ``/_sandbox/stats``: the bounds as epoch seconds."""
        offset = time.time() - now
        return {
            "client": self.client,
            "scope": self.scope,
            "reason": self.reason,
            "since": round(self.started + offset, 6),
            "until": round(self.until + offset, 6),
        }


class Timeouts:
    """The clients timed out right now, and how many timeouts there have been."""

    __slots__ = ("_current", "history", "started")

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], Timeout] = {}
        #: How many timeouts have started since the last reset.
        self.started = 0
        #: The most recent timeouts, newest last (at most 1000).
        self.history: deque[Timeout] = deque(maxlen=1000)

    def left(self, scope: str, client: str, now: float) -> float:
        """Seconds of ``client``'s timeout in ``scope`` still to run (0 = none)."""
        current = self._current.get((scope, client))
        if current is None:
            return 0.0
        if current.until <= now:
            del self._current[(scope, client)]
            return 0.0
        return current.until - now

    def start(self, scope: str, client: str, reason: str, now: float, seconds: float) -> None:
        """Time ``client`` out; a timeout already running is neither extended nor counted."""
        if seconds <= 0 or self.left(scope, client, now) > 0:
            return
        timeout = Timeout(client, scope, reason, now, now + seconds)
        self._current[(scope, client)] = timeout
        self.history.append(timeout)
        self.started += 1

    def current(self, now: float) -> list[Timeout]:
        for key in [k for k, t in self._current.items() if t.until <= now]:
            del self._current[key]
        return sorted(self._current.values(), key=lambda t: t.until)


def retry_after_seconds(seconds: float) -> int:
    """``Retry-After`` is whole seconds and at least 1, so a client never spins."""
    return max(1, math.ceil(seconds))


def limit_headers(decision: Decision) -> dict[str, str]:
    """The ``X-RateLimit-*`` headers the old API documented (sent only when asked for)."""
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(max(0.0, decision.reset))),
    }
