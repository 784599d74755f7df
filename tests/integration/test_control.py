"""Taking back what is queued, with real workers and the sandbox: cancel a scheduled send
and a campaign at the exact limit, pause and resume one, cancel while a worker dies."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from outbox import Handle, cancel, pause, resume, send_email, status
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SENDER = "News <news@example.com>"
RATE = 10


def _limited_fleet(fleet: Fleet, sandbox: Sandbox, workers: int = 2) -> None:
    sandbox.configure(rate=f"{RATE}/s", latency_ms=20, penalty=60)
    for _ in range(workers):
        fleet.start(concurrency=20, queues="email,bulk", OUTBOX_RATE_LIMIT=f"{RATE}/s")


def _campaign(recipients: int, tag: str) -> Handle:
    to = [f"{tag}{i}@example.org" for i in range(recipients)]
    return send_email(SENDER, to, "This week", text_body="Hello.")


def _arrived(sandbox: Sandbox, tag: str) -> Counter[str]:
    return Counter(
        r for m in sandbox.messages() for r in m.get("recipients") or [] if r.startswith(tag)
    )


def _sent_recipients(send_id: str) -> Counter[str]:
    return Counter(r for c in status(send_id).chunks if c.state is State.SENT for r in c.recipients)


def test_a_scheduled_send_canceled_before_its_time_sends_nothing(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """Fault: A send scheduled with `send_at` canceled before its time
    Outcome: nothing is sent when its time comes; a send scheduled a moment later arrives"""
    fleet.start(concurrency=4)
    at = time.time() + 3
    doomed = send_email(SENDER, ["doomed@example.org"], "Reminder", text_body="x", send_at=at)
    marker = send_email(SENDER, ["marker@example.org"], "Reminder", text_body="x", send_at=at + 1)
    assert cancel(doomed.id).state is State.CANCELED
    wait_all_done([marker], timeout=60)
    assert _arrived(sandbox, "doomed") == Counter()
    assert _arrived(sandbox, "marker") == Counter({"marker@example.org": 1})
    assert doomed.status().state is State.CANCELED


def test_a_campaign_canceled_after_its_first_sends_stops_at_what_was_in_flight(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """Fault: A 10,000-recipient campaign at the exact limit canceled after its first sends
    Outcome: every chunk ends sent or canceled; what the record calls sent is exactly what
    SMTP2GO accepted, nothing twice; after `cancel` returns, at most the chunks it found
    in flight go out"""
    _limited_fleet(fleet, sandbox)
    campaign = _campaign(10_000, "news")  # 100 chunks: ten seconds of the whole limit
    wait_until(lambda: len(_arrived(sandbox, "news")) >= 300, timeout=30, what="first sends")
    record = cancel(campaign.id)
    arrived_by_then = len(sandbox.messages())
    in_flight = record.counts["sending"]
    (done,) = wait_all_done([campaign], timeout=60)
    assert {s for s, n in done.counts.items() if n} <= {"sent", "canceled"}
    assert done.counts["canceled"] > 50  # most of it never went
    arrived = _arrived(sandbox, "news")
    assert max(arrived.values()) == 1  # nothing twice
    assert arrived == _sent_recipients(campaign.id)
    assert len(sandbox.messages()) - arrived_by_then <= in_flight
    assert sandbox.stats()["rate_limited"] == 0


def test_pause_then_resume_delivers_every_recipient_exactly_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """Fault: A campaign at the exact limit paused after its first sends, then resumed
    Outcome: while paused nothing more goes (no worker thread held); resumed, every
    recipient is delivered exactly once"""
    _limited_fleet(fleet, sandbox)
    campaign = _campaign(3_000, "held")  # 30 chunks
    wait_until(lambda: len(_arrived(sandbox, "held")) >= 200, timeout=30, what="first sends")
    record = pause(campaign.id)
    assert record.paused_at is not None
    wait_until(
        lambda: status(campaign.id).counts["sending"] == 0, timeout=30, what="in flight answered"
    )
    during = len(_arrived(sandbox, "held"))
    assert status(campaign.id).state is State.PAUSED
    assert during < 3_000
    time.sleep(1.5)  # fifteen slots' worth: a paused send takes none of them
    assert len(_arrived(sandbox, "held")) == during
    resume(campaign.id)
    (done,) = wait_all_done([campaign], timeout=60)
    assert done.state is State.SENT
    arrived = _arrived(sandbox, "held")
    assert len(arrived) == 3_000
    assert max(arrived.values()) == 1
    assert sandbox.stats()["rate_limited"] == 0


def test_a_worker_killed_while_a_cancel_runs_sends_nothing_after_it(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """Fault: A worker SIGKILLed while a cancel of a campaign runs, a new worker started
    Outcome: no chunk is sent after the cancel beyond those in flight; each chunk the
    dead worker held is looked up and ends sent (once) or canceled"""
    _limited_fleet(fleet, sandbox)
    campaign = _campaign(5_000, "gone")
    wait_until(lambda: len(_arrived(sandbox, "gone")) >= 200, timeout=30, what="first sends")
    result: dict[str, object] = {}
    canceling = threading.Thread(target=lambda: result.setdefault("record", cancel(campaign.id)))
    canceling.start()
    fleet.workers[0].kill()
    canceling.join(timeout=30)
    record = result["record"]
    arrived_by_then = len(sandbox.messages())
    in_flight = record.counts["sending"]  # type: ignore[attr-defined]
    fleet.start(concurrency=20, queues="email,bulk", OUTBOX_RATE_LIMIT=f"{RATE}/s")
    (done,) = wait_all_done([campaign], timeout=120)
    assert {s for s, n in done.counts.items() if n} <= {"sent", "canceled"}
    arrived = _arrived(sandbox, "gone")
    assert max(arrived.values()) == 1
    assert arrived == _sent_recipients(campaign.id)
    assert len(sandbox.messages()) - arrived_by_then <= in_flight
