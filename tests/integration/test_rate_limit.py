"""The shared rate limit across worker processes, measured by the sandbox."""

from __future__ import annotations

import collections

import pytest

from outbox import send_email
from outbox.worker.runtime import Runtime
from outbox.worker.states import State
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, wait_all_done

pytestmark = pytest.mark.integration


def _run(fleet: Fleet, sandbox: Sandbox, n: int, prefix: str) -> tuple[float, int]:
    handles = [
        send_email("s@example.com", [f"{prefix}{i}@example.com"], "x", text_body="y")
        for i in range(n)
    ]
    records = wait_all_done(handles, timeout=90)
    assert all(r.state is State.SENT for r in records)
    delivered = collections.Counter(sandbox_recipients(sandbox)())
    assert delivered == collections.Counter(f"{prefix}{i}@example.com" for i in range(n))
    times = sorted(m["time"] for m in sandbox.messages())
    rate = (len(times) - 1) / (times[-1] - times[0])
    return rate, int(sandbox.stats()["rate_limited"])


@pytest.mark.timeout(120)
def test_two_workers_share_one_limit(fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
    # Only the requests over the limit are refused, with hints (no minute-long timeout):
    # this measures the shared limiter, not how a fleet waits out a timeout.
    sandbox.configure(rate="20/s", penalty=0, rate_headers=True)
    # 5 % spacing headroom: the sandbox counts an exact sliding window, and on a loaded
    # 2-core CI machine thread wake-ups jitter by tens of milliseconds; each 429 costs
    # the whole fleet a one-second cool-down.
    env = {"OUTBOX_RATE_LIMIT": "20/s", "OUTBOX_RATE_MARGIN": "0.05"}
    fleet.start(concurrency=25, **env)
    fleet.start(concurrency=25, **env)
    rate, rate_limited = _run(fleet, sandbox, 400, "shared")
    # One limit for both: each worker alone would be allowed 20/s, together 40/s.
    assert rate <= 20 * 1.05, rate
    # Both kept sending. How close to R the fleet gets is a speed figure, measured in
    # bench/rate_limit.py: every 429 (scheduling jitter on a loaded 2-core machine can
    # squeeze 21 arrivals into one second of the sandbox's exact sliding window) holds
    # the whole fleet off for its Retry-After, a second here.
    assert rate >= 0.6 * 20, (rate, rate_limited)
    assert rate_limited <= 20  # under 5 % of the requests


@pytest.mark.timeout(120)
def test_without_shared_limit_the_api_answers_429_yet_all_are_sent_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """Baseline: a limit far above the API's; the sandbox refuses, retries deliver."""
    sandbox.configure(rate="20/s", penalty=0, rate_headers=True)
    fleet.start(concurrency=25, OUTBOX_RATE_LIMIT="1000/s", OUTBOX_MAX_ATTEMPTS="30")
    fleet.start(concurrency=25, OUTBOX_RATE_LIMIT="1000/s", OUTBOX_MAX_ATTEMPTS="30")
    _, rate_limited = _run(fleet, sandbox, 200, "storm")
    assert rate_limited > 20
