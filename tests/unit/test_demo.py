"""The demo's watch on a fakeredis runtime and a stand-in for the sandbox's control API."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from outbox.cli.demo.mix import build_plan
from outbox.cli.demo.options import Fault
from outbox.cli.demo.watch import Watch
from outbox.worker.runtime import Runtime

pytestmark = pytest.mark.usefixtures("runtime")


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def raise_for_status(self) -> None:
        return None

    def json(self) -> dict[str, Any]:
        return self.body


class Control:
    """``/_sandbox/stats`` as the sandbox answers it; what was posted to ``/config``."""

    def __init__(self) -> None:
        self.requests = {"email/send": 0, "sms/send": 0, "stats/email_cycle": 0}
        self.posted: list[dict[str, Any]] = []

    def get(self, path: str) -> _Answer:
        assert path == "/_sandbox/stats"
        by = {
            p: {"requests": n, "rate_limited": 0, "injected_failures": 0}
            for p, n in self.requests.items()
        }
        return _Answer({"by_endpoint": by})

    def post(self, path: str, json: dict[str, Any]) -> _Answer:
        assert path == "/_sandbox/config"
        self.posted.append(json)
        return _Answer({})


def watch(rt: Runtime, control: Control) -> Watch:
    plan = build_plan(400, run="test", seed=1)
    console = Console(file=io.StringIO(), width=120)
    return Watch(rt, control, plan, console, timeout=10)


def test_the_requests_bar_counts_what_the_sandbox_counted(runtime: Runtime) -> None:
    control = Control()
    seen = watch(runtime, control)
    bar = seen.progress.tasks[1]
    assert bar.description == "requests"
    control.requests.update({"email/send": 9, "sms/send": 2, "stats/email_cycle": 5})
    tick = seen.tick()
    # The send endpoints' requests (retries and refusals too), not the chunks done; each
    # of the 61 chunks not yet final takes one more at least.
    assert (tick.requests, bar.completed, bar.total) == (11, 11, 11 + 61)


def test_faults_fire_by_the_chunks_queued(runtime: Runtime) -> None:
    control = Control()
    seen = watch(runtime, control)
    burst = {"fail_next": 8, "fail_status": 503}
    seen.arm([Fault(at=0.5, config=burst, label="5xx burst")], chunks=10)
    seen.enqueued(recipients=100, chunks=4)
    seen.tick()
    assert control.posted == []
    seen.enqueued(recipients=1, chunks=1)
    seen.tick()
    assert control.posted == [burst]  # half the chunks queued: the rest still to send
    assert len(seen.fired) == 1
    seen.tick()
    assert control.posted == [burst]  # once
