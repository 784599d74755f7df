"""When to try again, written down in one place.

Precedence, first match wins:

1. the account cannot send (a rejected key, a missing permission: an
   :class:`~outbox.errors.AccountError`) -> ``hold``: every send waits for the key to work
   again, and this attempt is not counted: it is not the message's fault;
2. a permanent error (any 4xx but 429, or a payload the API can never accept)
   -> ``fail``: recorded ``failed`` at once, never retried;
3. attempts used up -> ``dead``: recorded and put in the dead letters for replay;
4. otherwise -> ``retry`` after a full-jitter exponential backoff, never sooner than the
   server's own hint (``Retry-After``, or the shared cool-down left), which is itself
   capped: a hint asking for hours is not obeyed blindly.

Only attempts at the API count. Waiting for the shared rate limit or a cool-down spends
no attempt: those waits are not failures of the message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from outbox.errors import (
    AccountError,
    RateLimitedError,
    ServerError,
    SMTP2GOError,
    TransportError,
)

__all__ = ["Action", "Decision", "Reason", "RetryPolicy", "backoff", "reason_of"]


class Action(StrEnum):
    #: Schedule another attempt after ``Decision.delay``.
    RETRY = "retry"
    #: Give up for good: the request can never succeed as it stands.
    FAIL = "fail"
    #: Give up after the last attempt: keep it for an operator to replay.
    DEAD = "dead"
    #: The account cannot send: hold every send until the key works again.
    HOLD = "hold"


class Reason(StrEnum):
    """Why an attempt is tried again (the ``reason`` of ``outbox_retries_total``)."""

    #: A 429: the fleet cools down first.
    RATE_LIMITED = "rate_limited"
    #: A 5xx.
    SERVER_ERROR = "server_error"
    #: No answer, and the request surely never reached the API (connect error, pool
    #: timeout).
    NETWORK = "network"
    #: No answer after the request may have reached the API: looked up before a resend.
    AMBIGUOUS = "ambiguous"
    #: The API refused the key: the account's sending is held, no attempt spent.
    HELD = "held"
    #: Any other retryable error (an unexpected status).
    OTHER = "other"


def reason_of(error: SMTP2GOError) -> Reason:
    """The :class:`Reason` an error gives for another attempt."""
    if isinstance(error, AccountError):
        return Reason.HELD
    if isinstance(error, TransportError):
        return Reason.AMBIGUOUS if error.ambiguous else Reason.NETWORK
    if isinstance(error, RateLimitedError):
        return Reason.RATE_LIMITED
    if isinstance(error, ServerError):
        return Reason.SERVER_ERROR
    return Reason.OTHER


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``.

    Full jitter spreads a fleet's retries evenly instead of in synchronised waves.
    ``attempt`` is the number of the attempt that just failed, from 1.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt cap and backoff constants; ``decide`` is a pure function of its arguments."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0
    #: The longest a server's hint may delay an attempt.
    hint_cap: float = 900.0

    def hint(self, seconds: float | None, default: float) -> float:
        """The wait a 429 asks for: its hint (capped), or ``default`` without one."""
        return min(seconds if seconds is not None else default, self.hint_cap)

    def decide(
        self,
        error: SMTP2GOError,
        attempt: int,
        *,
        hint: float | None = None,
        rng: random.Random | None = None,
    ) -> Decision:
        """What to do after ``attempt`` (from 1) failed with ``error``.

        ``hint`` is the server's wait (``Retry-After``) or the shared cool-down left; it
        is a floor for the delay, up to :attr:`hint_cap`.
        """
        if isinstance(error, AccountError):
            return Decision(Action.HOLD)
        if not error.retryable:
            return Decision(Action.FAIL)
        if attempt >= self.max_attempts:
            return Decision(Action.DEAD)
        delay = backoff(attempt, self.base, self.cap, rng)
        if hint is not None:
            delay = max(delay, min(hint, self.hint_cap))
        return Decision(Action.RETRY, delay)
