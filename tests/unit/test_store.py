"""The record scripts, on fakeredis and on a real Redis server."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from outbox.core.queues import Queue, TaskName
from outbox.core.states import Kind, State
from outbox.core.store import Store, keys
from outbox.core.store.batches import Claim, ClaimOutcome, FinishOutcome
from outbox.core.store.chunks import ChunkSpec, StoredChunk, chunk_id_for
from outbox.core.store.limits import Limit
from outbox.core.store.parked import Call
from outbox.core.store.reads import batch_state
from outbox.core.views import load_record
from outbox.core.windows import Window

B1 = "b" * 31 + "1"
#: Plenty of room: these tests are about records, not the limit.
ROOMY = Limit("send", (Window(1000, 1.0),), lease=30.0, ttl=3600, line_lease=60.0)


def _store(redis: Any) -> Store:
    return Store.connect(redis, retention=3600)


def _batch(store: Store, chunks: int = 2, key: str | None = None) -> str:
    specs = [
        ChunkSpec(chunk_id_for(B1, i), i, [f"u{i}@example.com"], {"to": [f"u{i}@example.com"]})
        for i in range(chunks)
    ]
    batch_id, created = store.batches.create(
        B1,
        kind=Kind.EMAIL,
        chunks=specs,
        payload={"subject": "x"},
        queue=Queue.EMAIL,
        idempotency_key=key,
    )
    assert created
    return batch_id


def _claim(
    store: Store, index: int, *, limit: Limit = ROOMY, worker: str = "w1", **kw: Any
) -> Claim:
    return store.batches.claim(
        chunk_id_for(B1, index), limit=limit, worker=worker, token=f"t{index}", max_wait=60, **kw
    )


def _finish(store: Store, claim: Claim, state: State, **kw: Any) -> FinishOutcome:
    return store.batches.finish(
        claim.chunk_id, state, limit=ROOMY, member=claim.member, **kw
    ).outcome


def test_create_is_idempotent_by_key_and_every_key_has_a_ttl(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, key="order-7")
    again, created = store.batches.create(
        "c" * 32,
        kind=Kind.EMAIL,
        chunks=[],
        payload={},
        queue=Queue.EMAIL,
        idempotency_key="order-7",
    )
    assert (again, created) == (B1, False)
    assert not redis_backend.exists(keys.batch("c" * 32))
    # the indexes, kept forever (entries leave them as their chunks move on)
    indexes = {keys.active().encode(), keys.unclaimed(Queue.EMAIL.value).encode()}
    assert all(
        redis_backend.ttl(k) > 0 for k in redis_backend.keys(keys.PREFIX + "*") if k not in indexes
    )


def test_the_stored_chunk_reads_back_as_written(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, chunks=1)
    chunk = store.batches.chunk(chunk_id_for(B1, 0))
    assert chunk is not None
    assert (chunk.kind, chunk.state, chunk.queue, chunk.index) == (
        Kind.EMAIL,
        State.QUEUED,
        Queue.EMAIL,
        0,
    )
    assert chunk.recipients == ["u0@example.com"]
    assert chunk.fields == {"to": ["u0@example.com"]}
    assert StoredChunk.from_hash(chunk.to_hash()) == chunk


def test_claim_then_final_makes_redelivery_a_no_op(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store)
    claim = _claim(store, 0)
    assert (claim.outcome, claim.attempt, claim.previous) == (ClaimOutcome.CLAIMED, 1, State.QUEUED)
    busy = _claim(store, 0, worker="w2")
    assert busy.outcome is ClaimOutcome.BUSY
    assert 29 < busy.wait <= 30
    assert _finish(store, claim, State.SENT, email_id="E1") is FinishOutcome.FINAL
    assert _claim(store, 0, worker="w2").outcome is ClaimOutcome.FINAL
    assert _finish(store, claim, State.FAILED) is FinishOutcome.NOOP
    assert store.batches.chunk_for_email("E1") == chunk_id_for(B1, 0)
    record = load_record(store, B1)
    assert record is not None
    assert record.counts["sent"] == 1
    assert (record.recipients_succeeded, record.recipients_failed) == (1, 0)
    assert record.ledger == {"sent": 1, "queued": 1}


def test_expired_lease_is_ambiguous_until_taken_over(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store)
    short = Limit("send", ROOMY.windows, lease=0.001, ttl=3600, line_lease=60.0)
    _claim(store, 0, limit=short, worker="dead")
    time.sleep(0.01)  # the lease runs out
    assert _claim(store, 0, worker="w2").outcome is ClaimOutcome.AMBIGUOUS
    again = _claim(store, 0, worker="w2", takeover=True, note="resent")
    assert (again.outcome, again.attempt) == (ClaimOutcome.CLAIMED, 2)
    record = load_record(store, B1)
    assert record is not None
    assert record.chunks[0].ambiguous == "resent"
    assert record.counts["sending"] == 1


def test_last_chunk_finishes_the_batch_exactly_once(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, chunks=3)
    outcomes = []
    for i, state in enumerate([State.SENT, State.DEAD, State.SENT]):
        outcomes.append(_finish(store, _claim(store, i), state))
    assert outcomes == [FinishOutcome.FINAL, FinishOutcome.FINAL, FinishOutcome.BATCH_DONE]
    record = load_record(store, B1)
    assert record is not None
    assert record.state is State.DEAD
    assert [c for c, _ in store.batches.dead_letters()] == [chunk_id_for(B1, 1)]
    assert record.ledger == {"sent": 2, "dead": 1}


def test_a_finished_batch_with_a_callback_says_so(redis_backend: Any) -> None:
    store = _store(redis_backend)
    specs = [ChunkSpec(chunk_id_for(B1, 0), 0, ["a@example.com"], {"to": ["a@example.com"]})]
    store.batches.create(
        B1,
        kind=Kind.EMAIL,
        chunks=specs,
        payload={},
        queue=Queue.EMAIL,
        extra={"callback": '{"task": "app.done"}'},
    )
    claim = _claim(store, 0)
    done = store.batches.finish(claim.chunk_id, State.SENT, limit=ROOMY, member=claim.member)
    assert (done.outcome, done.has_callback) == (FinishOutcome.BATCH_DONE, True)


def test_replay_moves_dead_or_failed_back_to_queued_never_sent(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, chunks=3)
    _finish(store, _claim(store, 0), State.DEAD)
    _finish(store, _claim(store, 1), State.FAILED)
    _finish(store, _claim(store, 2), State.SENT)
    dead, failed, sent = (chunk_id_for(B1, i) for i in range(3))
    assert [c for c, _ in store.batches.failed_letters()] == [failed]
    assert store.batches.replay(dead)
    assert not store.batches.replay(dead)  # only dead chunks
    assert not store.batches.replay(failed)  # not failed ones, unless asked
    assert store.batches.replay(failed, states=(State.FAILED, State.DEAD))
    assert not store.batches.replay(sent, states=(State.SENT, State.FAILED, State.DEAD))
    record = load_record(store, B1)
    assert record is not None
    assert (record.state, record.recipients_failed, record.finished_at) == (State.SENDING, 0, None)
    assert [c.replays for c in record.chunks] == [1, 1, 0]
    assert store.batches.dead_letters() == store.batches.failed_letters() == []
    assert record.ledger == {"queued": 2, "sent": 1}


def test_give_back_undoes_a_claim_without_spending_an_attempt(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, chunks=1)
    claim = _claim(store, 0)
    assert store.batches.give_back(claim, limit=ROOMY, note="stopping")
    chunk = store.batches.chunk(claim.chunk_id)
    assert chunk is not None
    assert (chunk.state, chunk.attempts) == (State.QUEUED, 0)
    assert not store.batches.give_back(claim, limit=ROOMY, note="again")  # moved on


def test_a_slot_given_back_by_a_waiter_leaves_a_retried_chunk_retrying(
    redis_backend: Any,
) -> None:
    """A sender that waited for its slot gives it back knowing only the grant (a hold
    called it off): a chunk with an attempt behind it goes back to ``retrying``, never to
    ``queued`` with ``attempts > 0``."""
    store = _store(redis_backend)
    _batch(store, chunks=1)
    first = _claim(store, 0)
    store.batches.finish(first.chunk_id, State.RETRYING, limit=ROOMY, member=first.member)
    second = _claim(store, 0)
    assert second.attempt == 2
    from_a_grant = replace(second, previous=None)  # what a waiter's grant carries
    assert store.batches.give_back(from_a_grant, limit=ROOMY, note="slot given back: held")
    chunk = store.batches.chunk(first.chunk_id)
    assert chunk is not None
    assert (chunk.state, chunk.attempts) == (State.RETRYING, 1)
    batch = store.batches.batch(B1)
    assert (batch["n:retrying"], batch["n:queued"], batch["n:sending"]) == ("1", "0", "0")


def test_bury_orphan_leaves_a_dead_letter_for_an_unknown_chunk(redis_backend: Any) -> None:
    store = _store(redis_backend)
    orphan = "d" * 32 + ".0"
    assert store.batches.bury_orphan(orphan, kind=Kind.SMS, error={"type": "InvalidPayload"})
    assert not store.batches.bury_orphan(orphan, kind=Kind.SMS, error={})  # it has a record now
    assert not store.batches.bury_orphan("not-ours", kind=Kind.SMS, error={})
    chunk = store.batches.chunk(orphan)
    assert chunk is not None
    assert (chunk.state, chunk.orphan, chunk.last_error) == (
        State.DEAD,
        True,
        {"type": "InvalidPayload"},
    )


def test_parked_calls_are_leased_and_a_reparked_call_survives_release(redis_backend: Any) -> None:
    store = _store(redis_backend)
    call = Call(TaskName.SEND_EMAIL, chunk=chunk_id_for(B1, 0))
    now = store.now()
    store.parked.park(call, now - 1)
    store.parked.park(Call(TaskName.RECORD_EVENT, args=({"event": "delivered"}, 2)), now + 100)
    due = store.parked.take(lease=30)
    assert [c for c, _ in due.calls] == [call]
    assert store.parked.take(lease=30).calls == []  # leased to the first taker
    store.parked.park(call, now + 50)  # parked again meanwhile: a new entry
    store.parked.release(due.calls[0][1])
    assert store.parked.count() == 2


def test_a_dead_holders_chunk_comes_back_once_its_lease_runs_out(redis_backend: Any) -> None:
    store = _store(redis_backend)
    _batch(store, chunks=1)
    short = Limit("send", ROOMY.windows, lease=0.05, ttl=3600, line_lease=60.0)
    _claim(store, 0, limit=short, worker="dead")
    assert store.parked.take().expired == []
    time.sleep(0.1)
    assert store.parked.take(lease=30).expired == [chunk_id_for(B1, 0)]
    assert store.parked.take().expired == []  # leased to the first taker


def test_the_ledger_keeps_refused_recipients_and_counts(redis_backend: Any) -> None:
    store = _store(redis_backend)
    specs = [
        ChunkSpec(
            chunk_id_for(B1, 0), 0, ["Ann <ann@example.com>"], {"to": ["Ann <ann@example.com>"]}
        )
    ]
    store.batches.create(
        B1,
        kind=Kind.EMAIL,
        chunks=specs,
        payload={},
        queue=Queue.EMAIL,
        refused=[("Bob <Bob@Example.com>", "suppressed locally")],  # keyed as the sent ones
    )
    ledger = {e.recipient: (e.state, e.chunk, e.reason) for e in store.batches.ledger(B1)}
    assert ledger == {
        "ann@example.com": ("queued", 0, None),
        "bob@example.com": ("suppressed", None, "suppressed locally"),
    }
    claim = _claim(store, 0)
    _finish(store, claim, State.FAILED, ledger_note="sender not verified")
    assert store.batches.ledger_counts(B1) == {"failed": 1, "suppressed": 1}
    [ann] = [e for e in store.batches.ledger(B1) if e.recipient == "ann@example.com"]
    assert (ann.state, ann.reason) == ("failed", "sender not verified")


@pytest.mark.parametrize(
    ("counts", "chunks", "state"),
    [
        ({}, 0, State.FAILED),
        ({"queued": 2}, 2, State.QUEUED),
        ({"queued": 1, "sending": 1}, 2, State.SENDING),
        ({"queued": 1, "sent": 1}, 2, State.SENDING),
        ({"retrying": 1, "sent": 1}, 2, State.RETRYING),
        ({"sent": 2}, 2, State.SENT),
        ({"sent": 1, "failed": 1}, 2, State.FAILED),
        ({"sent": 1, "dead": 1}, 2, State.DEAD),
    ],
)
def test_batch_state(counts: dict[str, int], chunks: int, state: State) -> None:
    assert batch_state(counts, chunks) is state
