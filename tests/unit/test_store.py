"""The record scripts, on fakeredis and on a real Redis server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from outbox.worker import keys
from outbox.worker.limiter import RateLimiter
from outbox.worker.records import load_record
from outbox.worker.settings import Rate
from outbox.worker.states import State
from outbox.worker.store import ChunkSpec, Claim, RecordStore, batch_state, chunk_id_for


def _batch(store: RecordStore, chunks: int = 2, key: str | None = None) -> str:
    specs = [
        ChunkSpec(chunk_id_for("b1", i), i, [f"u{i}@example.com"], {"to": [f"u{i}@example.com"]})
        for i in range(chunks)
    ]
    batch_id, created = store.create(
        "b1", kind="email", chunks=specs, payload={"subject": "x"}, idempotency_key=key
    )
    assert created
    return batch_id


def test_create_is_idempotent_by_key(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, key="order-7")
    again, created = store.create(
        "b2", kind="email", chunks=[], payload={}, idempotency_key="order-7"
    )
    assert (again, created) == ("b1", False)
    assert not redis_backend.exists(keys.batch("b2"))
    assert all(
        redis_backend.ttl(k) > 0
        for k in redis_backend.keys(keys.PREFIX + "*")
        if k != keys.PREFIX.encode() + b"active"
    )


def test_claim_then_final_makes_redelivery_a_no_op(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store)
    chunk = chunk_id_for("b1", 0)
    claim = store.claim(chunk, "b1", worker="w1", lease=30)
    assert (claim.outcome, claim.attempt, claim.previous) == ("claimed", 1, "queued")
    busy = store.claim(chunk, "b1", worker="w2", lease=30)
    assert busy.outcome == "busy"
    assert 29 < busy.wait <= 30
    done = store.finish(chunk, "b1", State.SENT, email_id="E1", succeeded=1)
    assert done.outcome == "final"
    assert store.claim(chunk, "b1", worker="w2", lease=30).outcome == "final"
    late = store.finish(chunk, "b1", State.FAILED, failed=1)
    assert late.outcome == "noop"
    assert store.chunk_for_email("E1") == chunk
    record = load_record(store, "b1")
    assert record is not None
    assert record.counts["sent"] == 1
    assert record.recipients_failed == 0


def test_expired_lease_is_ambiguous_until_taken_over(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store)
    chunk = chunk_id_for("b1", 0)
    store.claim(chunk, "b1", worker="dead", lease=0.001)
    time.sleep(0.01)  # the lease runs out
    assert store.claim(chunk, "b1", worker="w2", lease=30).outcome == "ambiguous"
    again = store.claim(chunk, "b1", worker="w2", lease=30, takeover=True, note="resent")
    assert (again.outcome, again.attempt) == ("claimed", 2)
    record = load_record(store, "b1")
    assert record is not None
    assert record.chunks[0].ambiguous == "resent"
    assert record.counts["sending"] == 1  # sending -> sending counted once


def test_last_chunk_finishes_the_batch_exactly_once(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, chunks=3)
    outcomes = []
    for i, state in enumerate([State.SENT, State.DEAD, State.SENT]):
        chunk = chunk_id_for("b1", i)
        store.claim(chunk, "b1", worker="w", lease=30)
        outcomes.append(store.finish(chunk, "b1", state, succeeded=1).outcome)
    assert outcomes == ["final", "final", "batch_done"]
    record = load_record(store, "b1")
    assert record is not None
    assert record.state is State.DEAD
    assert [c for c, _ in store.dead_letters()] == [chunk_id_for("b1", 1)]


def test_replay_moves_dead_back_to_queued(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, chunks=1)
    chunk = chunk_id_for("b1", 0)
    store.claim(chunk, "b1", worker="w", lease=30)
    store.finish(chunk, "b1", State.DEAD, failed=1)
    assert store.replay(chunk, "b1")
    assert not store.replay(chunk, "b1")  # only dead chunks
    record = load_record(store, "b1")
    assert record is not None
    assert (record.state, record.recipients_failed, record.finished_at) == (State.QUEUED, 0, None)
    assert record.chunks[0].replays == 1
    assert store.dead_letters() == []


def _back_for(store: RecordStore, limiter: RateLimiter, index: int, reserved: Claim) -> Claim:
    """A task coming back for the slot its earlier run reserved."""
    return store.claim(
        chunk_id_for("b1", index),
        "b1",
        worker="w",
        lease=30,
        limiter=limiter,
        reserved_at=reserved.now + reserved.wait,
    )


def test_claim_takes_a_rate_limit_slot_or_reserves_one(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, chunks=3)
    limiter = RateLimiter(redis_backend, "send", Rate(2, 1))
    first = store.claim(chunk_id_for("b1", 0), "b1", worker="w", lease=30, limiter=limiter)
    second = store.claim(
        chunk_id_for("b1", 1),
        "b1",
        worker="w",
        lease=30,
        limiter=limiter,
        max_wait=0.1,
        horizon=5,
    )
    third = store.claim(chunk_id_for("b1", 2), "b1", worker="w", lease=30, limiter=limiter)
    assert first.outcome == "claimed"
    assert second.outcome == "reserved"  # 0.5 s ahead: beyond max_wait, within the horizon
    assert third.outcome == "throttled"
    back = _back_for(store, limiter, 1, second)
    assert back.outcome == "claimed"
    assert 0 < back.wait <= 0.5


def test_a_reservation_is_refused_when_a_cool_down_outlasts_it(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, chunks=2)
    limiter = RateLimiter(redis_backend, "send", Rate(2, 1))
    store.claim(chunk_id_for("b1", 0), "b1", worker="w", lease=30, limiter=limiter)
    kept = store.claim(
        chunk_id_for("b1", 1), "b1", worker="w", lease=30, limiter=limiter, horizon=5
    )
    assert kept.outcome == "reserved"
    limiter.cool_down(3)  # a 429 somewhere in the fleet
    back = _back_for(store, limiter, 1, kept)
    assert back.outcome == "throttled"
    assert 2.5 < back.wait <= 3
    assert back.attempt == 0
    assert store.get_chunk_raw(chunk_id_for("b1", 1))["state"] == "queued"


def test_give_back_undoes_a_claim_without_spending_an_attempt(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    _batch(store, chunks=1)
    chunk = chunk_id_for("b1", 0)
    claim = store.claim(chunk, "b1", worker="w", lease=30)
    assert store.give_back(chunk, "b1", claim, "slot given back: cool-down")
    raw = store.get_chunk_raw(chunk)
    assert (raw["state"], raw["attempts"]) == ("queued", "0")
    assert redis_backend.hget(keys.batch("b1"), "n:sending") in (b"0", None)
    assert redis_backend.hget(keys.batch("b1"), "n:queued") == b"1"
    again = store.claim(chunk, "b1", worker="w", lease=30)
    assert (again.outcome, again.attempt) == ("claimed", 1)
    store.finish(chunk, "b1", State.SENT, succeeded=1)
    assert not store.give_back(chunk, "b1", again, "too late")  # it moved on: left alone
    assert store.get_chunk_raw(chunk)["state"] == "sent"


def test_parked_calls_are_leased_and_a_reparked_call_survives_release(redis_backend: Any) -> None:
    store = RecordStore(redis_backend)
    now = store.now()
    store.park({"task": "t", "chunk": "c"}, now - 1)
    [call] = store.take_parked(lease=60)
    assert store.take_parked(lease=60) == []  # leased, not handed out twice
    store.park({"task": "t", "chunk": "c"}, now + 30)  # the task parked itself again
    store.release(call)
    assert store.parked_count() == 1


@pytest.mark.parametrize(
    ("counts", "chunks", "state"),
    [
        ({}, 2, State.QUEUED),
        ({"sending": 1, "queued": 1}, 2, State.SENDING),
        ({"retrying": 1, "sent": 1}, 2, State.RETRYING),
        ({"sent": 2}, 2, State.SENT),
        ({"sent": 1, "failed": 1}, 2, State.FAILED),
        ({"failed": 1, "dead": 1}, 2, State.DEAD),
        ({}, 0, State.FAILED),
    ],
)
def test_batch_state(counts: dict[str, int], chunks: int, state: State) -> None:
    assert batch_state(counts, chunks) is state
