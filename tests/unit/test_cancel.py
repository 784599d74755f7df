"""``outbox.cancel``: what has not gone out ends ``canceled`` and never goes; what is in
flight ends as its answer says (``sent``, or ``canceled``: never retried)."""

from __future__ import annotations

import pytest

from outbox import RecordNotFound, State, cancel, send_email
from outbox.core.store.batches import ClaimOutcome
from outbox.core.store.chunks import chunk_id_for
from outbox.worker.runtime import Runtime


def _claim(rt: Runtime, chunk_id: str) -> ClaimOutcome:
    claim = rt.store.batches.claim(
        chunk_id, limit=rt.send_limit, worker="w", token=f"t-{chunk_id}", max_wait=60
    )
    return claim.outcome


def _send(n: int = 1, **kw: object) -> str:
    return send_email(
        "s@example.com", [f"r{i}@example.org" for i in range(n)], "x", text_body="y", **kw
    ).id


def test_a_queued_send_is_canceled_and_never_goes(runtime: Runtime) -> None:
    send_id = _send(250)  # three chunks
    record = cancel(send_id)
    assert record.state is State.CANCELED
    assert record.counts["canceled"] == 3
    assert record.ledger == {"canceled": 250}
    assert record.finished_at is not None
    for i in range(3):  # its tasks, delivered anyway, find it final
        assert _claim(runtime, chunk_id_for(send_id, i)) is ClaimOutcome.FINAL
    assert cancel(send_id).counts == record.counts  # again: nothing changes


def test_a_chunk_in_flight_ends_as_its_answer_says(runtime: Runtime) -> None:
    batches = runtime.store.batches
    sent_id, retried_id = _send(), _send()
    for send_id in (sent_id, retried_id):
        assert _claim(runtime, f"{send_id}.0") is ClaimOutcome.CLAIMED
        record = cancel(send_id)
        assert record.counts["sending"] == 1  # in flight: left to its answer
    member = f"{sent_id}.0#1"
    batches.finish(f"{sent_id}.0", State.SENT, limit=runtime.send_limit, member=member)
    finished = batches.finish(
        f"{retried_id}.0", State.RETRYING, limit=runtime.send_limit, member=f"{retried_id}.0#1"
    )
    assert finished.state == "canceled"  # it did not go, and is not tried again
    assert cancel(sent_id).state is State.SENT
    assert cancel(retried_id).state is State.CANCELED
    assert runtime.store.parked.take(lease=1).calls == []


def test_a_scheduled_send_and_one_chunk_can_be_canceled(runtime: Runtime) -> None:
    import time

    later = _send(send_at=time.time() + 3600)
    assert cancel(later).state is State.CANCELED
    two = _send(150)
    record = cancel(f"{two}.1")
    assert [c.state for c in record.chunks] == [State.CANCELED]
    whole = runtime.store.batches.batch(two)
    assert whole["n:queued"] == "1"
    assert _claim(runtime, f"{two}.0") is ClaimOutcome.CLAIMED  # the other still goes


def reserved_bulk_chunk(runtime: Runtime) -> str:
    """A bulk send whose one chunk the lane granted a slot while no worker held it (its
    call parked for whichever worker claims it): its id."""
    from outbox.core.store.limits import Limit
    from outbox.core.windows import parse_windows

    limit = Limit(
        "send", parse_windows("1/s"), lease=30.0, ttl=3600, line_lease=60.0, lookahead=1.0
    )
    object.__setattr__(runtime, "send_limit", limit)
    first, waiting = _send(lane="bulk"), _send(lane="bulk")
    assert _claim(runtime, f"{first}.0") is ClaimOutcome.CLAIMED
    assert _claim(runtime, f"{waiting}.0") is ClaimOutcome.QUEUED
    runtime.store.batches.finish(f"{first}.0", State.SENT, limit=limit, member=f"{first}.0#1")
    reserved = runtime.store.batches.chunk(f"{waiting}.0")
    assert reserved is not None
    assert reserved.reserved  # granted a slot, no worker yet
    return waiting


def test_a_bulk_chunk_waiting_without_a_thread_is_canceled_and_its_slot_freed(
    runtime: Runtime,
) -> None:
    waiting = reserved_bulk_chunk(runtime)
    assert cancel(waiting).state is State.CANCELED
    busy = runtime.redis.zrange("{outbox}:limit:send:0:busy", 0, -1)
    assert busy == []  # the reservation's slot is given back
    assert _claim(runtime, f"{waiting}.0") is ClaimOutcome.FINAL


def test_an_unknown_send_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(RecordNotFound):
        cancel("e" * 32)
    with pytest.raises(RecordNotFound):
        cancel(f"{_send()}.7")


def test_the_command_line_cancels(runtime: Runtime) -> None:
    from click.testing import CliRunner

    from outbox.cli.main import main

    send_id = _send(150)
    result = CliRunner().invoke(main, ["cancel", send_id])
    assert result.exit_code == 0, result.output
    assert "2 chunk(s) canceled" in result.output
    unknown = CliRunner().invoke(main, ["cancel", "e" * 32, "--json"])
    assert unknown.exit_code != 0


def test_a_page_whose_recipients_events_moved_is_cancelled_in_calls_within_a_budget(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Putting a moved recipient back costs a few commands: a page of chunks whose every
    recipient was moved takes several calls, each within the budget, and ends the same."""
    from outbox.core.states import Fate
    from outbox.core.store import batches as batches_module

    monkeypatch.setattr(batches_module, "CANCEL_BUDGET", 250)
    send_id = _send(1000)  # ten chunks of 100
    events = runtime.store.events
    for i in range(10):
        chunk_id = chunk_id_for(send_id, i)
        rcpts = [f"r{j}@example.org" for j in range(i * 100, (i + 1) * 100)]
        assert events.record(chunk_id, f"e{i}", {"event": "processed"},
                             fate=Fate.PROCESSED, recipients=rcpts)  # fmt: skip
    calls = []
    script = runtime.store.batches._cancel
    monkeypatch.setattr(
        runtime.store.batches, "_cancel", lambda **kw: calls.append(1) or script(**kw)
    )
    record = cancel(send_id)
    assert len(calls) == 4  # 3 chunks of 100 moved recipients per call, past 250
    assert record.counts["canceled"] == 10
    assert record.ledger == {"canceled": 1000}
    assert record.state is State.CANCELED
