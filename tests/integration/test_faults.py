"""Fault tests: the README's promise, checked against real processes.

Every test here breaks something on purpose (a worker, the API, a task message) while
real ``celery -A outbox.worker worker`` processes deliver to the sandbox, then ends the same
way: the sandbox's list of accepted messages is compared with what the producer asked
for (:func:`assert_intent`). Every recipient is delivered exactly once, or its chunk is
recorded ``failed``/``dead`` with the reason, and nothing was sent that nobody asked for.

Each fault test's docstring carries its row of the README's reliability table::

    Fault: what breaks
    Outcome: what happens, as the test checks it

``python -m tests.reliability_table`` prints the table from these docstrings (and from
the other ``test_faults_*.py`` modules); ``tests/unit/test_reliability_table.py`` keeps
the README's copy in step with it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from outbox import Record, send_email, send_sms
from outbox.core.smtp2go.models import address_key
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, start, stop, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, batch_states, wait_all_done

pytestmark = pytest.mark.integration

SENDER = "shop@example.com"


# -- the oracle ---------------------------------------------------------------------------


def delivered(sandbox: Sandbox) -> collections.Counter[str]:
    """How many times the sandbox accepted each recipient (emails and SMS numbers)."""
    counts: collections.Counter[str] = collections.Counter()
    for message in sandbox.messages():
        if message.get("endpoint") == "sms/send":
            counts.update(message.get("destination") or [])
        else:
            counts.update(address_key(r) for r in message.get("recipients") or [])
    return counts


@dataclass(frozen=True)
class Outcome:
    """What :func:`assert_intent` found: recipients by how their chunk ended."""

    sent: int
    failed: int
    dead: int
    ambiguous_chunks: int


def assert_intent(records: Iterable[Record], accepted: collections.Counter[str]) -> Outcome:
    """The sandbox's accepted set against the producer's intent.

    Every recipient of a ``sent`` chunk was accepted exactly once; every recipient of a
    ``failed`` or ``dead`` chunk was not accepted at all and its chunk says why; nothing
    was accepted that no record asks for; each batch's counters agree with its chunks.
    """
    intended: dict[str, Any] = {}
    sent = failed = dead = ambiguous = 0
    for record in records:
        assert record.done, f"{record.id} is still {record.state}"
        states = collections.Counter(c.state.value for c in record.chunks)
        assert len(record.chunks) == record.chunks_total
        for state in State:
            assert record.counts.get(state.value, 0) == states.get(state.value, 0), (
                record.id,
                record.counts,
                states,
            )
        for chunk in record.chunks:
            ambiguous += chunk.ambiguous is not None
            for rcpt in chunk.recipients:
                key = address_key(rcpt)
                assert key not in intended, f"{key} is in two chunks"
                intended[key] = chunk
                if chunk.state is State.SENT:
                    sent += 1
                    assert accepted[key] == 1, f"{key} accepted {accepted[key]} times ({chunk.id})"
                else:
                    assert chunk.state in {State.FAILED, State.DEAD}, chunk
                    assert chunk.last_error is not None, chunk
                    assert chunk.last_error.get("type"), chunk
                    assert accepted[key] == 0, f"{key} is {chunk.state} but was accepted"
                    failed += chunk.state is State.FAILED
                    dead += chunk.state is State.DEAD
        succeeded = sum(len(c.recipients) for c in record.chunks if c.state is State.SENT)
        assert record.recipients_succeeded == succeeded, record
    stray = set(accepted) - set(intended)
    assert not stray, f"accepted but never asked for: {sorted(stray)[:5]}"
    return Outcome(sent, failed, dead, ambiguous)


def wait_done(handles: list[Any], timeout: float, broker_url: str | None = None) -> list[Record]:
    """:func:`wait_all_done`, and on failure the laggards' histories and the broker's state."""
    try:
        return wait_all_done(handles, timeout=timeout)
    except AssertionError as exc:
        lines = [str(exc)]
        for handle in handles:
            record = handle.status()
            for chunk in record.chunks if not record.done else []:
                lines.append(f"{chunk.id} {chunk.state} attempts={chunk.attempts}")
                lines += [f"    {json.dumps(h, default=str)}" for h in chunk.history]
        if broker_url:
            client = redis.Redis.from_url(broker_url)
            sizes = {q: client.llen(q) for q in ("email", "sms", "bulk")}
            lines.append(f"broker: queues {sizes}")
        raise AssertionError("\n".join(lines[:200])) from None


#: The stuck-message sweep on a test's time scale (production: every 5 min, 15 min old),
#: slower than the normal recovery from a kill (the lease, 13 s, and a look-up) so that
#: it republishes only what that recovery cannot bring back.
SWEEP_ENV = {"OUTBOX_SWEEP_INTERVAL": "5", "OUTBOX_STUCK_AFTER": "30"}


@contextlib.contextmanager
def beat(fleet: Fleet, tmp_path: Path, **env: str) -> Iterator[Path]:
    """``celery -A outbox.worker beat`` for the fleet (workers need ``SWEEP_ENV`` too: the sweep
    task reads ``OUTBOX_STUCK_AFTER`` where it runs). Yields its log."""
    log = tmp_path / "beat.log"
    cmd = [PYTHON, "-m", "celery", "-A", "outbox.worker", "beat", "-l", "info"]
    cmd += ["-s", str(tmp_path / "beat-schedule")]
    proc = start(cmd, env=fleet.env(**{**SWEEP_ENV, **env}), log=log)
    try:
        wait_until(lambda: "beat: Starting" in log.read_text(), timeout=30, what="beat")
        yield log
    finally:
        stop(proc)


def swept(fleet: Fleet) -> int:
    """Chunks the stuck sweep published again (it logs each in the worker that ran it)."""
    logs = [w.log.read_text(errors="replace") for w in fleet.workers]
    return sum(len(re.findall(r"stuck in \w+; published again", text)) for text in logs)


def settled_notes(records: Iterable[Record]) -> dict[str, str]:
    """``chunk id -> ambiguous note`` for every chunk whose attempt had an unknown fate."""
    return {c.id: c.ambiguous for r in records for c in r.chunks if c.ambiguous}


# -- workers that die or are stopped --------------------------------------------------------


def batch_counter(rt: Runtime, batch_id: str, state: State) -> int:
    return int(rt.store.batches.batch(batch_id).get(f"n:{state.value}", 0))


@pytest.mark.timeout(150)
def test_sigkill_mid_batch_then_a_new_worker_finishes_exactly_once(
    fleet: Fleet,
    producer: Runtime,
    sandbox: Sandbox,
    redis_db: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A 2,000-recipient batch (20 chunks of 100) and 200 single sends; SIGKILL with
    ~50 sends in flight, at least 15 of the batch's chunks among them; a new worker
    finishes.

    Fault: A worker killed with SIGKILL mid-batch (a 2,000-recipient batch in chunks of
        100 plus 200 single sends; ~50 sends in flight)
    Outcome: nothing lost, nothing sent twice: each chunk in flight comes back when its
        lease runs out and is looked up in `activity/search` (one scan for all) before
        any resend, noted `ambiguous`; a message taken but not yet claimed is found
        through the unclaimed index; recovery time in `docs/reliability.md`
    """
    sandbox.configure(latency_ms=500)
    first = fleet.start(concurrency=50, **SWEEP_ENV)
    started = time.monotonic()
    big = send_email(SENDER, [f"big{i}@example.com" for i in range(2000)], "News", text_body="y")
    assert big.chunks == 20
    singles = [send_email(SENDER, [f"one{i}@example.com"], "x", text_body="y") for i in range(200)]
    # The singles' queue (email) drains first; kill once the batch's chunks are in flight.
    wait_until(
        lambda: batch_counter(producer, big.id, State.SENDING) >= 15,
        timeout=60,
        interval=0.02,
        what="the batch's chunks in flight",
    )
    in_flight = sum(batch_counter(producer, h.id, State.SENDING) for h in (big, *singles[-60:]))
    first.kill()
    killed = time.monotonic()
    accepted_at_kill = sandbox.stats()["accepted"]
    assert accepted_at_kill < 220, "everything was sent before the kill; slow it down"
    with beat(fleet, tmp_path):
        fleet.start(concurrency=50, **SWEEP_ENV)
        records = wait_done([big, *singles], timeout=90, broker_url=redis_db[0])
        done = time.monotonic()
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 2200
    notes = settled_notes(records)
    # Exactly the claims the kill interrupted are ambiguous, each settled by a look-up.
    assert 15 <= len(notes) <= 50 + 10, notes
    assert all("activity/search" in note for note in notes.values()), notes
    big_notes = [c for c in records[0].chunks if c.ambiguous]
    assert len(big_notes) >= 15
    # Every chunk of the big batch sent whole (the API's own count is of emails, one each).
    assert all(c.state is State.SENT and len(c.recipients) == 100 for c in records[0].chunks)
    recovery = done - killed
    print(
        f"\nSIGKILL: {in_flight} sends in flight, {accepted_at_kill} accepted before the kill "
        f"({killed - started:.1f}s in); batch complete {recovery:.1f}s after the kill "
        f"({done - started:.1f}s in all); {len(notes)} ambiguous, "
        f"{sum('not resent' in n for n in notes.values())} settled without a resend, "
        f"{swept(fleet)} republished by the stuck sweep"
    )


@pytest.mark.timeout(120)
def test_sigterm_finishes_in_flight_sends_and_leaves_the_rest_queued(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, redis_db: tuple[str, str]
) -> None:
    """A warm shutdown: the sends in flight finish, the rest go back to the queue.

    Fault: A worker stopped with SIGTERM (warm shutdown) mid-batch
    Outcome: in-flight sends finish and are recorded `sent`, the rest stay `queued` on
        the broker (none `sending`, none ambiguous); a new worker sends them at once,
        exactly once
    """
    broker_url, _ = redis_db
    sandbox.configure(latency_ms=1000)
    first = fleet.start(concurrency=10)
    handles = [send_email(SENDER, [f"term{i}@example.com"], "x", text_body="y") for i in range(80)]
    wait_until(lambda: sandbox.stats()["accepted"] >= 20, timeout=30, what="20 sends")
    stopping = time.monotonic()
    first.stop()  # SIGTERM, then wait for the process to exit
    stopped = time.monotonic()

    store = producer.store
    states = batch_states(store, [h.id for h in handles])
    by_state = collections.Counter(s.value for s in states.values() if s is not None)
    accepted = sandbox.stats()["accepted"]
    assert by_state[State.SENDING.value] == 0, by_state  # nothing left half-done
    assert by_state[State.SENT.value] == accepted, (by_state, accepted)
    assert by_state[State.QUEUED.value] == 80 - accepted, by_state
    broker = redis.Redis.from_url(broker_url)
    assert broker.llen("email") == 80 - accepted  # handed back, not held
    assert broker.hlen("unacked") == 0

    restarted = time.monotonic()
    fleet.start(concurrency=10)
    records = wait_all_done(handles, timeout=60)
    finished = time.monotonic()
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 80
    assert outcome.ambiguous_chunks == 0
    print(
        f"\nSIGTERM: worker exited {stopped - stopping:.1f}s after the signal with "
        f"{accepted} sent and {80 - accepted} queued; a new worker finished them in "
        f"{finished - restarted:.1f}s"
    )


# -- the API hangs past the client timeout ---------------------------------------------------


@pytest.mark.timeout(90)
def test_hung_answers_are_reconciled_not_resent(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """The sandbox takes a send, then answers only after the client gave up.

    Fault: SMTP2GO takes a send but answers after the client timeout (`hang_next`)
    Outcome: `RequestTimeout(ambiguous=True)`: the chunk is not resent blind; the next
        attempt first looks for its `X-Outbox-Id` in `activity/search` (SMS:
        `sms/view-sent`), finds it and records `sent` with an `ambiguous` note
    """
    fleet.start(concurrency=4, SMTP2GO_TIMEOUT="2")
    # One SMS first, hung on its own, then three of ten emails.
    sandbox.configure(hang_next=1, hang_seconds=20)
    sms = send_sms(["+61400000001"], "Your code is 123456")
    wait_until(lambda: sandbox.stats()["hung"] == 1, timeout=20, what="the SMS to hang")
    sandbox.configure(hang_next=3, hang_seconds=20)
    emails = [send_email(SENDER, [f"hang{i}@example.com"], "x", text_body="y") for i in range(10)]

    records = wait_all_done([sms, *emails], timeout=60)
    outcome = assert_intent(records, delivered(sandbox))
    assert outcome.sent == 11
    assert sandbox.stats()["hung"] == 4

    notes = settled_notes(records)
    assert len(notes) == 4, notes
    for chunk in (c for r in records for c in r.chunks if c.id in notes):
        assert chunk.state is State.SENT
        assert "not resent" in notes[chunk.id], notes[chunk.id]
        errors = [h["error"] for h in chunk.history if h.get("error")]
        assert errors, chunk.history
        assert errors[0]["type"] == "RequestTimeout", chunk.history
        assert errors[0]["ambiguous"] is True
    assert notes.keys() & {c.id for c in records[0].chunks}, "the SMS was not the hung one"
    by_rcpt = {address_key(m["recipients"][0]): m for m in sandbox.messages()}
    for record in records[1:]:
        [chunk] = record.chunks
        assert chunk.attempts == 1  # settled by the look-up, never sent a second time
        # The id found in the activity is recorded, so webhooks still find the message.
        assert chunk.email_id == by_rcpt[chunk.recipients[0]]["email_id"]
    print(f"\nhung sends reconciled: {sorted(notes.values())}")


# -- poison messages -------------------------------------------------------------------------


def broker_idle(broker_url: str) -> bool:
    """Nothing queued on the broker and nothing held there unacknowledged."""
    client = redis.Redis.from_url(broker_url)
    queued = sum(client.llen(q) for q in ("email", "sms", "bulk"))
    return queued == 0 and client.hlen("unacked") == 0


@pytest.mark.timeout(60)
def test_poison_messages_are_dead_lettered_once_and_never_loop(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, redis_db: tuple[str, str]
) -> None:
    """Task messages the worker cannot read: an old payload shape, a chunk with no record.

    Fault: A task message that no longer validates (an older producer's payload), for a
        chunk with a record and for one without
    Outcome: `dead` at once, in the dead letters once with the field errors; acknowledged,
        never retried or redelivered; `outbox dead replay` rebuilds the chunk from its
        stored payload and sends it once
    """
    from click.testing import CliRunner

    from outbox.cli import main as outbox
    from outbox.worker.celery_app import app

    broker_url, _ = redis_db
    worker = fleet.start(concurrency=2)
    # A real chunk whose own task is parked for an hour: only the poison reaches a worker.
    handle = send_email(
        SENDER, ["poison@example.com"], "Kept", text_body="y", send_at=time.time() + 3600
    )
    chunk_id = f"{handle.id}.0"
    orphan_id = "0" * 32 + ".0"
    old_shape = {"from": SENDER, "recipients": ["poison@example.com"], "body": "y"}
    published = [
        app.send_task("outbox.send_email", args=[chunk_id, old_shape], queue="email"),
        app.send_task("outbox.send_email", args=[orphan_id, {"to": "nobody"}], queue="email"),
        app.send_task("outbox.send_sms", args=[chunk_id, "not even an object"], queue="sms"),
    ]
    store = producer.store
    wait_until(
        lambda: {chunk_id, orphan_id} <= {c for c, _ in store.batches.dead_letters()},
        timeout=20,
        what="both chunks in the dead letters",
    )
    wait_until(lambda: broker_idle(broker_url), timeout=20, what="the broker to be idle")
    log = worker.log.read_text(errors="replace")
    for result in published:
        assert log.count(f"[{result.id}] received") == 1, result.id

    letters = [c for c, _ in store.batches.dead_letters()]
    assert sorted(letters) == sorted([chunk_id, orphan_id])
    [record] = [handle.status()]
    [chunk] = record.chunks
    assert chunk.state is State.DEAD
    assert chunk.last_error is not None
    assert chunk.last_error["type"] == "InvalidPayload"
    assert {"from", "recipients", "body"} <= set(chunk.last_error["field_errors"]), chunk.last_error
    assert chunk.attempts == 0  # the API was never asked
    orphan = store.batches.chunk(orphan_id)
    assert orphan is not None
    assert orphan.state is State.DEAD
    assert orphan.last_error is not None
    assert {"sender", "to.0"} <= set(orphan.last_error["field_errors"])
    assert sandbox.messages() == []

    # The operator's way out: the replay rebuilds the task from the stored payload.
    runner = CliRunner()
    listed = json.loads(runner.invoke(outbox, ["dead", "list", "--json"]).output)
    assert {row["id"]: row["last_error"]["type"] for row in listed} == {
        chunk_id: "InvalidPayload",
        orphan_id: "InvalidPayload",
    }
    replayed = runner.invoke(outbox, ["dead", "replay", chunk_id, orphan_id, "--json"])
    answer = json.loads(replayed.output)
    assert [r["id"] for r in answer["replayed"]] == [chunk_id]
    assert [s["id"] for s in answer["skipped"]] == [orphan_id]  # nothing to rebuild it from
    [record] = wait_all_done([handle], timeout=20)
    outcome = assert_intent([record], delivered(sandbox))
    assert outcome.sent == 1
    assert record.chunks[0].replays == 1
