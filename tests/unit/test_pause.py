"""``outbox.pause`` and ``outbox.resume``: a paused send's chunks wait ``paused`` with no
thread and no task; resuming lets each go on from where it was, exactly once."""

from __future__ import annotations

import pytest

from outbox import RecordNotFound, State, cancel, pause, resume
from outbox.core.store.batches import ClaimOutcome
from outbox.core.store.chunks import chunk_id_for
from outbox.worker.runtime import Runtime
from tests.unit.test_cancel import _claim, _send, reserved_bulk_chunk


def _parked_chunks(rt: Runtime) -> list[str]:
    return sorted(call.chunk or "" for call, _ in rt.store.parked.take(lease=1).calls)


def test_a_paused_send_holds_its_chunks_and_resume_lets_them_go(runtime: Runtime) -> None:
    send_id = _send(250)  # three chunks, their messages on the broker
    record = pause(send_id)
    assert record.state is State.PAUSED
    assert record.paused_at is not None
    assert record.counts["paused"] == 3
    # two messages arrive while it is paused: nothing is sent, no task is kept
    for i in (0, 1):
        assert _claim(runtime, chunk_id_for(send_id, i)) is ClaimOutcome.PAUSED
    assert pause(send_id).counts == record.counts  # again: nothing changes
    resumed = resume(send_id)
    assert resumed.paused_at is None
    assert resumed.counts["queued"] == 3
    assert resumed.counts["paused"] == 0
    # the two whose messages were taken are published again; the third's is still coming
    assert _parked_chunks(runtime) == [chunk_id_for(send_id, 0), chunk_id_for(send_id, 1)]
    for i in range(3):
        assert _claim(runtime, chunk_id_for(send_id, i)) is ClaimOutcome.CLAIMED
    assert resume(send_id).counts == runtime_counts(runtime, send_id)  # a no-op


def runtime_counts(rt: Runtime, send_id: str) -> dict[str, int]:
    from outbox import status

    return status(send_id).counts


def test_a_retry_earned_while_paused_is_paused_when_it_comes(runtime: Runtime) -> None:
    batches = runtime.store.batches
    send_id = _send()
    chunk_id = f"{send_id}.0"
    assert _claim(runtime, chunk_id) is ClaimOutcome.CLAIMED
    assert pause(send_id).counts["sending"] == 1  # in flight: left to its answer
    batches.finish(chunk_id, State.RETRYING, limit=runtime.send_limit, member=f"{chunk_id}#1")
    assert _claim(runtime, chunk_id) is ClaimOutcome.PAUSED  # the parked retry arrives
    chunk = batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.PAUSED
    assert chunk.attempts == 1
    resume(send_id)
    chunk = batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.RETRYING
    assert chunk.attempts == 1


def test_a_bulk_chunk_granted_while_paused_gives_its_slot_back(runtime: Runtime) -> None:
    waiting = reserved_bulk_chunk(runtime)
    assert pause(waiting).counts["paused"] == 1
    assert runtime.redis.zrange("{outbox}:limit:send:0:busy", 0, -1) == []
    assert _parked_chunks(runtime) == []  # its reserved call is withdrawn
    resume(waiting)
    assert _parked_chunks(runtime) == [f"{waiting}.0"]  # no message left: published again
    chunk = runtime.store.batches.chunk(f"{waiting}.0")
    assert chunk is not None
    assert chunk.state is State.QUEUED
    assert chunk.attempts == 0


def test_a_waiting_sender_is_sent_away_and_its_place_dropped(runtime: Runtime) -> None:
    from outbox.core.store.limits import Limit, Wake
    from outbox.core.windows import parse_windows

    limit = Limit("send", parse_windows("1/s"), lease=30.0, ttl=3600, line_lease=60.0)
    object.__setattr__(runtime, "send_limit", limit)
    first, waiting = _send(), _send()
    assert _claim(runtime, f"{first}.0") is ClaimOutcome.CLAIMED  # its answer is not in
    assert _claim(runtime, f"{waiting}.0") is ClaimOutcome.WAITING
    pause(waiting)
    assert runtime.store.limits.await_grant(limit, f"{waiting}.0", 1.0) is Wake.PAUSED
    runtime.store.batches.finish(f"{first}.0", State.SENT, limit=limit, member=f"{first}.0#1")
    chunk = runtime.store.batches.chunk(f"{waiting}.0")
    assert chunk is not None
    assert chunk.state is State.PAUSED
    resume(waiting)
    assert _parked_chunks(runtime) == [f"{waiting}.0"]


def test_cancel_takes_a_paused_send_and_resume_finds_nothing(runtime: Runtime) -> None:
    send_id = _send(150)
    pause(send_id)
    assert _claim(runtime, f"{send_id}.0") is ClaimOutcome.PAUSED
    assert cancel(send_id).state is State.CANCELED
    resume(send_id)
    assert _parked_chunks(runtime) == []
    assert _claim(runtime, f"{send_id}.1") is ClaimOutcome.FINAL


def test_a_resume_that_stopped_half_way_is_finished_by_the_sweep(runtime: Runtime) -> None:
    from outbox.worker import beat

    send_id = _send()
    pause(send_id)
    assert _claim(runtime, f"{send_id}.0") is ClaimOutcome.PAUSED
    object.__setattr__(runtime.settings, "stuck_after_seconds", 0)
    assert beat.sweep_stuck() == 0  # paused: left alone
    runtime.redis.hdel(f"{{outbox}}:batch:{send_id}", "paused_at")  # resume died after this
    assert beat.sweep_stuck() == 1
    assert _claim(runtime, f"{send_id}.0") is ClaimOutcome.CLAIMED


def test_pause_needs_a_whole_send(runtime: Runtime) -> None:
    with pytest.raises(RecordNotFound):
        pause("e" * 32)
    with pytest.raises(RecordNotFound):
        resume(f"{_send()}.0")


def test_the_command_line_pauses_and_resumes(runtime: Runtime) -> None:
    from click.testing import CliRunner

    from outbox.cli.main import main

    send_id = _send(150)
    paused = CliRunner().invoke(main, ["pause", send_id])
    assert paused.exit_code == 0, paused.output
    assert "paused; 2 chunk(s) paused" in paused.output
    shown = CliRunner().invoke(main, ["status", send_id])
    assert f"resume with `outbox resume {send_id}`" in shown.output
    resumed = CliRunner().invoke(main, ["resume", send_id, "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert '"paused_at": null' in resumed.output


def test_the_fleet_metrics_count_canceled_and_paused_chunks(runtime: Runtime) -> None:
    from outbox.core.store.overview import read_overview

    paused, canceled = _send(250), _send(150)
    pause(paused)
    cancel(canceled)
    seen = read_overview(runtime.redis)
    assert (seen.paused, seen.canceled) == (3, 2)
    cancel(paused)  # a paused chunk canceled leaves the paused count
    seen = read_overview(runtime.redis)
    assert (seen.paused, seen.canceled) == (0, 5)
    again = _send()
    pause(again)
    resume(again)
    assert read_overview(runtime.redis).paused == 0
