"""A send of any size: written a page per script call, staged, then committed at once.

All or nothing: a producer that dies while staging leaves a batch no claim sends (beat
discards it), and no idempotency key, so calling again sends it exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest

from outbox.core.queues import Queue
from outbox.core.states import Kind, State
from outbox.core.store import Store, keys
from outbox.core.store.batches import PAGE, ClaimOutcome
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.core.store.limits import Limit
from outbox.core.windows import parse_windows

LIMIT = Limit("send", parse_windows("1000/s"), lease=30.0, ttl=3600, line_lease=60.0)


def _specs(batch_id: str, n: int) -> list[ChunkSpec]:
    return [
        ChunkSpec(
            chunk_id_for(batch_id, i),
            i,
            [f"r{i}.{j}@example.org" for j in range(3)],
            {"to": [f"r{i}.{j}@example.org" for j in range(3)]},
        )
        for i in range(n)
    ]


def _create(store: Store, batch_id: str, n: int, key: str | None = None) -> tuple[str, bool]:
    return store.batches.create(
        batch_id,
        kind=Kind.EMAIL,
        chunks=_specs(batch_id, n),
        payload={"sender": "s@example.com"},
        queue=Queue.BULK,
        idempotency_key=key,
    )


def _claim(store: Store, chunk_id: str) -> ClaimOutcome:
    return store.batches.claim(
        chunk_id, limit=LIMIT, worker="w", token=f"t-{chunk_id}", max_wait=5
    ).outcome


def test_a_send_of_many_pages_is_recorded_whole_and_its_key_returns_it(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=3600)
    batch_id = "a" * 32
    n = 2 * PAGE + 7
    assert _create(store, batch_id, n, key="newsletter-1") == (batch_id, True)
    assert _create(store, "b" * 32, n, key="newsletter-1") == (batch_id, False)
    assert "staged" not in store.batches.batch(batch_id)
    assert store.batches.ledger_counts(batch_id) == {"queued": 3 * n}
    ledger = store.batches.ledger(batch_id)
    assert len(ledger) == 3 * n
    assert {e.state for e in ledger} == {"queued"}
    # the recipients are stored once, in the chunk's own payload fields
    assert redis_backend.hget(keys.chunk(chunk_id_for(batch_id, 5)), "recipients") is None
    chunk = store.batches.chunk(chunk_id_for(batch_id, n - 1))
    assert chunk is not None
    assert chunk.recipients == [f"r{n - 1}.{j}@example.org" for j in range(3)]
    assert _claim(store, chunk_id_for(batch_id, n - 1)) is ClaimOutcome.CLAIMED
    store.batches.finish(chunk_id_for(batch_id, n - 1), State.SENT, limit=LIMIT)
    assert store.batches.ledger_counts(batch_id) == {"queued": 3 * n - 3, "sent": 3}


def test_a_producer_that_dies_while_staging_leaves_nothing_sendable(
    redis_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.connect(redis_backend, retention=3600)
    batch_id = "c" * 32
    pages = 0
    create = store.batches._create

    def dying(*args: Any, **kw: Any) -> Any:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise KeyboardInterrupt("the producer's process is killed")
        return create(*args, **kw)

    monkeypatch.setattr(store.batches, "_create", dying)
    with pytest.raises(KeyboardInterrupt):
        _create(store, batch_id, 4 * PAGE, key="newsletter-2")
    monkeypatch.setattr(store.batches, "_create", create)
    # two pages were written; no chunk of them is sent, and the key is free
    assert "staged" in store.batches.batch(batch_id)
    assert _claim(store, chunk_id_for(batch_id, 0)) is ClaimOutcome.BUSY
    assert store.redis.get(keys.idempotency("newsletter-2")) is None
    again = "d" * 32
    assert _create(store, again, 4 * PAGE, key="newsletter-2") == (again, True)
    assert _claim(store, chunk_id_for(again, 0)) is ClaimOutcome.CLAIMED
    # beat's expiry discards what the dead producer left
    assert store.batches.abandoned(store.now() + 1) == [batch_id]
    store.batches.discard(batch_id, 4 * PAGE)
    assert store.batches.batch(batch_id) == {}
    assert store.batches.chunk(chunk_id_for(batch_id, 0)) is None
    assert store.batches.abandoned(store.now() + 1) == []


def test_index_reads_and_writes_go_a_page_at_a_time(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=3600)
    ids = [f"{'e' * 32}.{i}" for i in range(2500)]
    redis_backend.zadd(keys.dead_letters(), {c: i for i, c in enumerate(ids)})
    assert [c for c, _ in store.batches.dead_letters(10_000)] == ids
    assert len(store.batches.dead_letters(1200)) == 1200
    store.batches.forget_letters(ids[:2400])
    assert [c for c, _ in store.batches.dead_letters()] == ids[2400:]


def test_status_answers_with_counts_and_reads_chunks_only_when_asked(
    redis_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outbox.core.views import load_record

    store = Store.connect(redis_backend, retention=3600)
    batch_id = "f" * 32
    _create(store, batch_id, 1200)
    reads: list[int] = []
    chunks = store.batches.chunks

    def counted(ids: Any) -> Any:
        reads.append(len(ids))
        return chunks(ids)

    monkeypatch.setattr(store.batches, "chunks", counted)
    record = load_record(store, batch_id)
    assert record is not None
    assert record.counts["queued"] == 1200
    assert record.ledger == {"queued": 3600}
    assert reads == []  # the counts came at once
    assert len(record.chunks) == 1200
    assert reads == [500, 500, 200]  # a page per round trip, when asked
    assert len(record.model_dump(mode="json")["chunks"]) == 1200


@pytest.mark.parametrize("suppressed", [3, 3000])
def test_a_large_send_finds_its_suppressed_recipients_either_way(
    redis_backend: Any, suppressed: int
) -> None:
    """A set smaller than the send is read a page at a time; a larger one is asked about
    a page of addresses per command: the same answer."""
    store = Store.connect(redis_backend, retention=3600)
    store.suppressions.add(*(f"s{i}@example.org" for i in range(suppressed)))
    evens = [f"s{i}@example.org" for i in range(0, 3000, 2)]
    wanted = evens + [f"other{i}@example.org" for i in range(1500)]
    found = store.suppressions.matching(wanted)
    assert found == {f"s{i}@example.org" for i in range(0, 3000, 2) if i < suppressed}
