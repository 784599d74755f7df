"""Sharing the limit among the app's own mail: lanes, tenants, caps, pacing.

Examples on fakeredis and a real Redis, through the claim, finish and serve scripts as a
worker calls them; the guarantee under arbitrary interleavings is the property test in
``test_limits.py``.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.store import Store, keys
from outbox.core.store.batches import Claim, ClaimOutcome
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.core.store.limits import Limit
from outbox.core.windows import parse_windows

_sends = iter(range(10**6))


def _store(redis: Any) -> Store:
    return Store.connect(redis, retention=3600)


def _limit(text: str, **sharing: Any) -> Limit:
    return Limit("send", parse_windows(text), lease=30.0, ttl=3600, line_lease=60.0, **sharing)


def _send(store: Store, lane: str = "transactional", tenant: str | None = None) -> str:
    batch_id = f"{next(_sends):032x}"
    spec = ChunkSpec(chunk_id_for(batch_id, 0), 0, ["u@example.com"])
    store.batches.create(
        batch_id, kind=Kind.EMAIL, chunks=[spec], payload={}, queue=Queue.EMAIL,
        lane=lane, tenant=tenant,
    )  # fmt: skip
    return spec.id


def _claim(store: Store, chunk_id: str, limit: Limit) -> Claim:
    return store.batches.claim(
        chunk_id, limit=limit, worker="w", token=f"t-{chunk_id}-{time.monotonic()}", max_wait=60
    )


def _answer(store: Store, claim: Claim, limit: Limit) -> None:
    store.batches.finish(claim.chunk_id, State.SENT, limit=limit, member=claim.member)


def _parked_chunks(redis: Any) -> list[str]:
    out = []
    for raw in redis.zrange(keys.parked(), 0, -1):
        body = json.loads(raw)
        if body.get("chunk"):
            out.append(body["chunk"])
    return out


def test_a_bulk_chunk_waits_without_a_thread_and_is_adopted_when_granted(
    redis_backend: Any,
) -> None:
    store = _store(redis_backend)
    limit = _limit("1/s", lookahead=1.0)
    first = _claim(store, _send(store, "bulk"), limit)
    assert first.outcome is ClaimOutcome.CLAIMED
    waiting = _send(store, "bulk")
    queued = _claim(store, waiting, limit)
    assert queued.outcome is ClaimOutcome.QUEUED  # the task is done; no thread waits
    assert _parked_chunks(redis_backend) == []
    _answer(store, first, limit)  # its slot frees a second later: known now
    # the lane granted the slot to the waiting chunk and parked its call for a relay
    chunk = store.batches.chunk(waiting)
    assert chunk is not None
    assert chunk.state is State.SENDING
    assert chunk.reserved == "queued"
    assert _parked_chunks(redis_backend) == [waiting]
    adopted = _claim(store, waiting, limit)
    assert adopted.outcome is ClaimOutcome.CLAIMED
    assert adopted.attempt == 1
    assert 0.5 < adopted.wait <= 1.0
    # a second copy of the task finds it held by the first
    assert _claim(store, waiting, limit).outcome is ClaimOutcome.BUSY


def test_a_transactional_chunk_goes_before_every_waiting_bulk_one(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("1/s")
    first = _claim(store, _send(store, "bulk"), limit)
    bulk = [_send(store, "bulk") for _ in range(5)]
    assert {_claim(store, c, limit).outcome for c in bulk} == {ClaimOutcome.QUEUED}
    reset = _send(store, "transactional")
    assert _claim(store, reset, limit).outcome is ClaimOutcome.WAITING  # on its thread
    _answer(store, first, limit)
    wake = redis_backend.lpop(keys.wake("send", reset))
    assert wake is not None
    assert wake.decode().startswith(f"{reset}#1 ")
    assert all(store.batches.chunk(c).state is State.QUEUED for c in bulk)  # type: ignore[union-attr]


def test_a_bulk_chunk_takes_a_slot_only_within_the_look_ahead(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("2/s", pace=0.5, lookahead=0.1)
    assert _claim(store, _send(store, "bulk"), limit).outcome is ClaimOutcome.CLAIMED
    # the next slot is 0.5 s on (paced): further than the look-ahead, so no thread waits
    assert _claim(store, _send(store, "bulk"), limit).outcome is ClaimOutcome.QUEUED
    # a transactional chunk takes that slot and sleeps until it
    reset = _claim(store, _send(store, "transactional"), limit)
    assert reset.outcome is ClaimOutcome.CLAIMED
    assert 0.4 < reset.wait <= 0.5
    # and a relay's turn is parked for when the bulk chunk's slot nears
    kick = [m for m in redis_backend.zrange(keys.parked(), 0, -1) if b"serve_line" in m]
    assert len(kick) == 1


def test_paced_slots_are_granted_p_over_n_apart(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("4/s", pace=0.25)
    claims = [_claim(store, _send(store), limit) for _ in range(4)]
    assert [c.outcome for c in claims] == [ClaimOutcome.CLAIMED] * 4
    slots = [c.now + c.wait for c in claims]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(0.249 < g < 0.3 for g in gaps), gaps


def _drain(store: Store, limit: Limit, current: list[Claim], rounds: int) -> list[str]:
    """Answer each granted request at once and adopt whatever the lane grants next; the
    tenants of the chunks granted, in order (``current`` ends with those in flight)."""
    granted: list[str] = []
    for _ in range(rounds):
        if not current:
            break
        claim = current.pop(0)
        _answer(store, claim, limit)
        for chunk_id in _parked_chunks(store.redis):
            store.redis.zremrangebyscore(keys.parked(), "-inf", "+inf")
            adopted = _claim(store, chunk_id, limit)
            assert adopted.outcome is ClaimOutcome.CLAIMED
            chunk = store.batches.chunk(chunk_id)
            assert chunk is not None
            granted.append(chunk.tenant or "-")
            current.append(adopted)
    return granted


def test_waiting_tenants_share_by_their_weights_oldest_first(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("1/0.01s", weights={"acme": 3}, lookahead=1.0)
    first = _claim(store, _send(store, "bulk"), limit)
    for _ in range(40):
        for tenant in ("acme", "globex"):
            assert _claim(store, _send(store, "bulk", tenant), limit).outcome is (
                ClaimOutcome.QUEUED
            )
    granted = _drain(store, limit, [first], 40)
    assert len(granted) == 40
    assert Counter(granted) == {"acme": 30, "globex": 10}
    # the shares hold over every stretch, not only in sum
    assert all(granted[i : i + 4].count("acme") == 3 for i in range(0, 40, 4))


def test_a_new_tenant_does_not_wait_for_an_old_ones_backlog(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("1/0.01s", lookahead=1.0)
    flight = [_claim(store, _send(store, "bulk"), limit)]
    for _ in range(20):
        _claim(store, _send(store, "bulk", "acme"), limit)
    assert _drain(store, limit, flight, 5) == ["acme"] * 5
    assert _claim(store, _send(store, "bulk", "globex"), limit).outcome is ClaimOutcome.QUEUED
    granted = _drain(store, limit, flight, 4)
    assert "globex" in granted[:2], granted
    assert granted.count("globex") == 1, granted


def test_a_capped_tenant_waits_for_its_own_window_while_others_go(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("10/s", caps={"acme": parse_windows("1/s")})
    one = _claim(store, _send(store, "transactional", "acme"), limit)
    assert one.outcome is ClaimOutcome.CLAIMED
    # acme's one slot is in flight: its next waits, but another tenant's goes at once
    assert _claim(store, _send(store, "transactional", "acme"), limit).outcome is (
        ClaimOutcome.WAITING
    )
    other = _claim(store, _send(store, "transactional", "globex"), limit)
    assert other.outcome is ClaimOutcome.WAITING  # behind acme's waiter in the lane...
    # ...until the next serve, which skips the capped tenant and grants globex
    store.limits.serve(limit)
    line = keys.lane_tenant("send", "transactional", "globex")
    assert redis_backend.llen(line) == 0
    assert redis_backend.llen(keys.lane_tenant("send", "transactional", "acme")) == 1
    _answer(store, one, limit)
    # acme's window now knows its next slot: a second after the answer, not sooner
    acme = keys.lane_tenant("send", "transactional", "acme")
    assert redis_backend.llen(acme) == 0
    busy = redis_backend.zrange(keys.tenant_window("send", "acme", 1, "busy"), 0, -1)
    assert len(busy) == 1


def test_a_finish_hands_the_bulk_chunk_it_grants_to_its_own_thread(redis_backend: Any) -> None:
    store = _store(redis_backend)
    limit = _limit("1/s", lookahead=1.0)
    first = _claim(store, _send(store, "bulk"), limit)
    waiting = _send(store, "bulk")
    assert _claim(store, waiting, limit).outcome is ClaimOutcome.QUEUED
    finished = store.batches.finish(
        first.chunk_id, State.SENT, limit=limit, member=first.member, hand_off=True
    )
    assert finished.handed == waiting
    # its call is parked as a fallback, a second after its slot, for a thread that dies
    (call,) = redis_backend.zrange(keys.parked(), 0, -1, withscores=True)
    assert json.loads(call[0])["chunk"] == waiting
    assert call[1] > store.now() + 1.0
    adopted = _claim(store, waiting, limit)
    assert adopted.outcome is ClaimOutcome.CLAIMED
    assert redis_backend.zcard(keys.parked()) == 0  # adopted: the fallback is not needed


# -- the fairness itself, as properties ------------------------------------------------


def _fresh_store() -> Store:
    import fakeredis

    return _store(fakeredis.FakeRedis())


def _granted_next(store: Store, limit: Limit, current: Claim, waiting: dict[str, Claim]) -> str:
    """Answer ``current``; the chunk the lanes gave the freed slot to ('' for none)."""
    finished = store.batches.finish(
        current.chunk_id, State.SENT, limit=limit, member=current.member, hand_off=True
    )
    if finished.handed:
        return finished.handed
    for chunk_id in list(waiting):
        if store.redis.lpop(keys.wake("send", chunk_id)):
            return chunk_id
    return ""


def _adopt(store: Store, limit: Limit, chunk_id: str, lane: str) -> Claim:
    if lane == "transactional":  # granted while it waited on its thread
        chunk = store.batches.chunk(chunk_id)
        assert chunk is not None
        return Claim(chunk_id, ClaimOutcome.CLAIMED, 0.0, chunk.attempts, None, 0.0)
    adopted = _claim(store, chunk_id, limit)
    assert adopted.outcome is ClaimOutcome.CLAIMED
    return adopted


@settings(max_examples=60, deadline=None)
@given(
    lanes=st.lists(st.sampled_from(["transactional", "bulk"]), min_size=2, max_size=24),
    tenants=st.lists(st.sampled_from([None, "a", "b", "c"]), min_size=24, max_size=24),
)
def test_transactional_goes_first_and_nobody_starves(
    lanes: list[str], tenants: list[str | None]
) -> None:
    """Whatever waits, a freed slot goes to a waiting transactional chunk before any bulk
    one, and every chunk is granted a slot once the ones before it are answered."""
    store = _fresh_store()
    limit = _limit("1/0.001s", lookahead=1.0, weights={"a": 2})
    current = _claim(store, _send(store, "bulk"), limit)
    assert current.outcome is ClaimOutcome.CLAIMED
    lane_of: dict[str, str] = {}
    waiting: dict[str, Claim] = {}
    for lane, tenant in zip(lanes, tenants, strict=False):
        chunk_id = _send(store, lane, tenant)
        claim = _claim(store, chunk_id, limit)
        assert claim.outcome in (ClaimOutcome.WAITING, ClaimOutcome.QUEUED)
        lane_of[chunk_id] = lane
        if lane == "transactional":
            waiting[chunk_id] = claim
    pending = set(lane_of)
    for _ in range(len(lane_of) + 1):
        granted = _granted_next(store, limit, current, waiting)
        if not granted:
            break
        transactional_waiting = [c for c in pending if lane_of[c] == "transactional"]
        if transactional_waiting:
            assert lane_of[granted] == "transactional", (granted, transactional_waiting)
        pending.discard(granted)
        waiting.pop(granted, None)
        current = _adopt(store, limit, granted, lane_of[granted])
    assert pending == set()  # nobody starved


@settings(max_examples=40, deadline=None)
@given(wa=st.integers(1, 5), wb=st.integers(1, 5), n=st.integers(10, 40))
def test_two_waiting_tenants_share_within_the_fair_queueing_bound(wa: int, wb: int, n: int) -> None:
    """While both wait, over every stretch from the start: |grants_a/w_a - grants_b/w_b|
    stays within 1/w_a + 1/w_b (start-time fair queueing's bound)."""
    store = _fresh_store()
    limit = _limit("1/0.001s", lookahead=1.0, weights={"a": float(wa), "b": float(wb)})
    current = _claim(store, _send(store, "bulk"), limit)
    for _ in range(n):
        for tenant in ("a", "b"):
            _claim(store, _send(store, "bulk", tenant), limit)
    counts = {"a": 0, "b": 0}
    for _ in range(n):  # neither runs dry in n grants
        granted = _granted_next(store, limit, current, {})
        chunk = store.batches.chunk(granted)
        assert chunk is not None
        assert chunk.tenant is not None
        counts[chunk.tenant] += 1
        assert abs(counts["a"] / wa - counts["b"] / wb) <= 1 / wa + 1 / wb + 1e-9, counts
        current = _adopt(store, limit, granted, "bulk")
