"""Workers that die mid-run, and waits that no worker holds."""

from __future__ import annotations

import collections
import time

import pytest

from outbox import send_email
from outbox.core.states import State
from outbox.worker.runtime import Runtime, get_runtime
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, wait_all_done

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_sigkill_mid_run_loses_nothing_and_notes_ambiguous_sends(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    sandbox.configure(latency_ms=300)
    n = 300
    first = fleet.start(concurrency=20)
    handles = [
        send_email("s@example.com", [f"k{i}@example.com"], "x", text_body="y") for i in range(n)
    ]
    wait_until(lambda: len(sandbox.messages()) >= 80, timeout=30, what="80 sends")
    first.kill()
    sent_at_kill = len(sandbox.messages())
    assert sent_at_kill < n, "the run finished before the kill; make it slower"
    fleet.start(concurrency=20)

    records = wait_all_done(handles, timeout=120)
    delivered = collections.Counter(sandbox_recipients(sandbox)())
    lost = {f"k{i}@example.com" for i in range(n)} - set(delivered)
    assert not lost, [c for r in records for c in r.chunks if c.recipients[0] in lost][:2]
    assert all(r.state is State.SENT for r in records)

    chunks = {c.recipients[0]: c for r in records for c in r.chunks}
    ambiguous = {rcpt for rcpt, c in chunks.items() if c.ambiguous}
    # Sends in flight at the kill (at most the 20 threads) are noted as ambiguous ...
    assert 1 <= len(ambiguous) <= 20
    # ... and any duplicate is among them (the reconciliation should leave none).
    duplicates = {rcpt for rcpt, count in delivered.items() if count > 1}
    assert duplicates <= ambiguous
    assert not duplicates, f"reconciliation missed {sorted(duplicates)}"
    notes = [note for rcpt in ambiguous for note in chunks[rcpt].notes]
    assert any("ambiguous" in note for note in notes)


@pytest.mark.timeout(90)
def test_waits_are_kept_in_redis_and_sent_once_when_due(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """No worker holds a message through a wait (a broker countdown would be lost with
    the worker, or on Redis run twice): ``send_at`` waits in Redis, and the relay
    publishes each call once, when it is due."""
    fleet.start(concurrency=4)
    fleet.start(concurrency=4)
    due = time.time() + 6
    later = send_email("s@example.com", ["later@example.com"], "x", text_body="y", send_at=due)
    soon = send_email(
        "s@example.com", ["soon@example.com"], "x", text_body="y", send_at=time.time() + 1
    )
    assert get_runtime().store.parked.count() == 2
    records = wait_all_done([later, soon], timeout=40)
    assert all(r.state is State.SENT for r in records)
    messages = {m["recipients"][0]: m for m in sandbox.messages()}
    assert messages["later@example.com"]["time"] >= due - 0.01
    time.sleep(3)
    assert collections.Counter(sandbox_recipients(sandbox)()) == {
        "later@example.com": 1,
        "soon@example.com": 1,
    }
    assert get_runtime().store.parked.count() == 0
