from __future__ import annotations

import random

import pytest

from outbox.core.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SMTP2GOError,
    TransportError,
    UnauthorizedError,
)
from outbox.worker.policy import Action, RetryPolicy, backoff


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (10, 60.0), (40, 60.0)]
)
def test_backoff_is_full_jitter_under_the_ceiling(attempt: int, ceiling: float) -> None:
    rng = random.Random(7)
    samples = [backoff(attempt, base=1.0, cap=60.0, rng=rng) for _ in range(2000)]
    assert 0 <= min(samples) < ceiling * 0.05
    assert ceiling * 0.95 < max(samples) <= ceiling


def _err(cls: type[SMTP2GOError], **kw: object) -> SMTP2GOError:
    return cls("boom", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (_err(BadRequestError, status_code=400), Action.FAIL),
        (_err(UnauthorizedError, status_code=401), Action.HOLD),
        (
            _err(ForbiddenError, status_code=400, error_code="E.ENDPOINT_PERMISSION_DENIED"),
            Action.HOLD,
        ),
        (_err(NotFoundError, status_code=404), Action.FAIL),
        (_err(ServerError, status_code=503), Action.RETRY),
        (_err(RateLimitedError, status_code=429), Action.RETRY),
        (TransportError("reset", ambiguous=False), Action.RETRY),
    ],
)
def test_precedence(error: SMTP2GOError, action: Action) -> None:
    assert RetryPolicy(max_attempts=5).decide(error, 1).action is action


def test_attempts_exhausted_is_dead_but_permanent_still_fails_and_the_account_holds() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(_err(ServerError, status_code=500), 3).action is Action.DEAD
    assert policy.decide(_err(BadRequestError, status_code=400), 3).action is Action.FAIL
    assert policy.decide(_err(UnauthorizedError, status_code=401), 3).action is Action.HOLD


def test_server_hint_is_a_floor() -> None:
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=2.0)
    decision = policy.decide(_err(RateLimitedError, status_code=429), 1, hint=30.0)
    assert decision.action is Action.RETRY
    assert decision.delay == 30.0
    low_hint = policy.decide(_err(ServerError, status_code=500), 1, hint=0.0, rng=random.Random(1))
    assert 0 <= low_hint.delay <= 1.0


def test_a_server_hint_is_capped() -> None:
    """A Retry-After of hours is not obeyed blindly (openai-python caps it too)."""
    policy = RetryPolicy(max_attempts=5, hint_cap=900.0)
    decision = policy.decide(_err(RateLimitedError, status_code=429), 1, hint=86400.0)
    assert decision.delay == 900.0
    assert policy.hint(86400.0, default=60.0) == 900.0
    assert policy.hint(None, default=60.0) == 60.0
