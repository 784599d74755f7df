from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from outbox.worker.limiter import RateLimiter, Throttled
from outbox.worker.settings import Rate, parse_rate


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("10/s", 10, 1), ("600/m", 600, 60), ("5/10s", 5, 10), ("1000/hour", 1000, 3600)],
)
def test_parse_rate(text: str, count: float, period: float) -> None:
    assert parse_rate(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["", "10", "ten/s", "10/fortnight", "0/s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_grants_one_slot_per_interval(redis_backend: Any) -> None:
    limiter = RateLimiter(redis_backend, "t", Rate(10, 1))
    first = limiter.try_acquire()
    second = limiter.try_acquire()
    assert first.granted
    assert first.wait == 0
    assert not second.granted
    assert 0.08 < second.wait <= 0.1


def test_reservation_within_max_wait(redis_backend: Any) -> None:
    limiter = RateLimiter(redis_backend, "t", Rate(10, 1))
    waits = [limiter.try_acquire(max_wait=1.0) for _ in range(10)]
    assert all(a.granted for a in waits)
    # Each reservation is one interval after the previous one.
    assert [round(a.wait, 1) for a in waits] == [round(0.1 * i, 1) for i in range(10)]
    refused = limiter.try_acquire(max_wait=0.5)
    assert not refused.granted
    assert refused.wait == pytest.approx(1.0, abs=0.02)


def test_burst_allows_that_many_at_once(redis_backend: Any) -> None:
    limiter = RateLimiter(redis_backend, "t", Rate(5, 1), burst=3)
    assert [limiter.try_acquire().granted for _ in range(4)] == [True, True, True, False]


def test_buckets_are_independent(redis_backend: Any) -> None:
    a = RateLimiter(redis_backend, "a", Rate(1, 1))
    b = RateLimiter(redis_backend, "b", Rate(1, 1))
    assert a.try_acquire().granted
    assert b.try_acquire().granted
    assert not a.try_acquire().granted


def test_cool_down_blocks_every_caller_and_never_shortens(redis_backend: Any) -> None:
    limiter = RateLimiter(redis_backend, "t", Rate(1000, 1))
    other_worker = RateLimiter(redis_backend, "t", Rate(1000, 1))
    limiter.cool_down(5)
    limiter.cool_down(1)  # a shorter hint must not cut the longer cool-down
    refused = other_worker.try_acquire(max_wait=1.0)
    assert not refused.granted
    assert 4.5 < refused.wait <= 5
    assert 4.5 < other_worker.cooling_for() <= 5


def test_acquire_context_sleeps_through_reservation(redis_backend: Any) -> None:
    slept: list[float] = []
    limiter = RateLimiter(redis_backend, "t", Rate(10, 1), sleep=slept.append)
    with limiter.acquire(max_wait=1.0):
        pass
    with limiter.acquire(max_wait=1.0) as wait:
        assert wait == pytest.approx(0.1, abs=0.01)
    assert slept == [pytest.approx(0.1, abs=0.01)]
    with pytest.raises(Throttled) as info, limiter.acquire(max_wait=0.0):
        pass
    assert info.value.wait > 0


def test_rate_over_a_second_is_exact(redis_backend: Any) -> None:
    """Reserved slots fall exactly one interval apart, so R per second is R, not R+burst."""
    limiter = RateLimiter(redis_backend, "t", Rate(50, 1))
    slots = []
    started = time.monotonic()
    while True:
        a = limiter.try_acquire(max_wait=1.0)
        if not a.granted:
            break
        slots.append(a.wait)
    elapsed = time.monotonic() - started
    # Slots at 0, 20 ms, ..., up to 1 s: 51 in the closed window [0, 1], plus one for
    # every 20 ms the loop itself took (each wait is counted from its own call).
    assert 51 <= len(slots) <= 51 + int(elapsed / 0.02) + 1
    # One interval apart (less the time between two calls), never two in one slot.
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) > 0.005
    assert max(gaps) <= 0.02 + 1e-4
    assert slots[-1] == pytest.approx(1.0, abs=0.05)
