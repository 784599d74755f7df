"""What the scripts are handed: one small named object, and nothing large to decode.

Decoding and copying cost Redis time by the byte, inside a call that holds it. So the
payload of a send (megabytes of attachments) never reaches ``create.lua``: a plain SET
writes it just before, and the script only checks its key. A page of entries (parked
calls, addresses) travels as ARGVs of their own after ``ARGV[1]``, a page per call. A
real Redis is watched with ``MONITOR`` to see what each call carried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
import redis

from outbox.core.queues import Queue, TaskName
from outbox.core.states import Kind, State
from outbox.core.store import Store, keys, scripts
from outbox.core.store.batches import PAGE, PAYLOAD_PENDING, CreateArgs
from outbox.core.store.chunks import ChunkSpec, StoredChunk, chunk_id_for
from outbox.core.store.parked import PARK_PAGE, Call
from tests.unit.test_key_slots import Monitor, real_redis

__all__ = ["real_redis"]  # the fixture, shared with the key-slot test

RETENTION = 3600
#: Bytes of a named object at most: a handful of fields, never a page of entries.
SMALL = 512


def _specs(batch_id: str, n: int) -> list[ChunkSpec]:
    rcpts = [[f"u{i}@example.com"] for i in range(n)]
    return [ChunkSpec(chunk_id_for(batch_id, i), i, r, {"to": r}) for i, r in enumerate(rcpts)]


def _attachment_payload() -> dict[str, Any]:
    blob = base64.b64encode(os.urandom(750_000)).decode()  # 1 MB as base64
    return {
        "sender": "a@example.com",
        "subject": "Invoice",
        "text_body": "Attached.",
        "attachments": [{"filename": "a.pdf", "fileblob": blob, "mimetype": "application/pdf"}],
    }


def _watch(client: redis.Redis) -> Monitor:
    """A monitor of the store's calls, its scripts known to the server first (a call that
    loads one is seen twice)."""
    for name in ("create", "commit", "park", "lift", "sync_suppressed", "take_due"):
        client.script_load(scripts.source(name))
    where = client.connection_pool.connection_kwargs
    return Monitor(f"redis://{where['host']}:{where['port']}/{where.get('db', 0)}")


def _calls(watched: Monitor, script: str) -> list[list[bytes]]:
    """The ARGVs of each call of ``script`` seen (keys left out)."""
    digest = hashlib.sha1(scripts.source(script).encode()).hexdigest().encode()
    out = []
    for client, args in watched.commands:
        if client != "lua" and args[0].upper() == b"EVALSHA" and args[1] == digest:
            out.append(args[3 + int(args[2]) :])
    return out


@pytest.mark.parametrize("chunks", [1, PAGE + 1], ids=["whole", "staged"])
def test_create_is_never_handed_the_payload(real_redis: redis.Redis, chunks: int) -> None:
    store = Store.connect(real_redis, retention=RETENTION)
    batch_id = "a" * 31 + str(chunks % 10)
    payload = _attachment_payload()
    text = json.dumps(payload, separators=(",", ":"))
    with _watch(real_redis) as watched:
        assert store.batches.create(
            batch_id, kind=Kind.EMAIL, chunks=_specs(batch_id, chunks), payload=payload,
            queue=Queue.EMAIL, idempotency_key=f"invoice-{chunks}",
        ) == (batch_id, True)  # fmt: skip
    blob = payload["attachments"][0]["fileblob"].encode()
    pages = _calls(watched, "create")
    assert len(pages) == (1 if chunks <= PAGE else 2)
    assert all(blob not in arg for argv in pages for arg in argv)
    # the payload went by a plain SET of the client's, kept briefly until the script ran
    key = keys.batch_payload(batch_id).encode()
    sets = [args for client, args in watched.commands if client != "lua" and args[0] == b"SET"]
    pending = str(PAYLOAD_PENDING).encode()
    assert [(a[:3], sorted(a[3:])) for a in sets if a[1] == key] == [
        ([b"SET", key, text.encode()], sorted([b"EX", pending, b"NX"]))
    ]
    # ... which kept it as long as the batch
    assert store.batches.payload(batch_id) == payload
    assert real_redis.ttl(keys.batch_payload(batch_id)) > PAYLOAD_PENDING
    assert real_redis.ttl(keys.batch(batch_id)) > PAYLOAD_PENDING


def test_a_small_payload_travels_with_the_first_page_in_one_command(
    real_redis: redis.Redis,
) -> None:
    """Most sends carry no attachment: their payload goes as the script's raw ARGV[2],
    stored as it is, with no SET before it."""
    store = Store.connect(real_redis, retention=RETENTION)
    batch_id = "b" * 32
    payload = {"sender": "shop@example.com", "subject": "Hi", "text_body": "x"}
    with _watch(real_redis) as watched:
        assert store.batches.create(
            batch_id, kind=Kind.EMAIL, chunks=_specs(batch_id, 1), payload=payload,
            queue=Queue.EMAIL,
        ) == (batch_id, True)  # fmt: skip
    [argv] = _calls(watched, "create")
    assert argv[1] == json.dumps(payload, separators=(",", ":")).encode()
    key = keys.batch_payload(batch_id).encode()
    assert not [a for c, a in watched.commands if c != "lua" and a[0] == b"SET" and a[1] == key]
    assert store.batches.payload(batch_id) == payload
    assert real_redis.ttl(keys.batch_payload(batch_id)) > PAYLOAD_PENDING


def test_pages_of_entries_travel_beside_a_small_named_object(real_redis: redis.Redis) -> None:
    store = Store.connect(real_redis, retention=RETENTION)
    calls = [Call(TaskName.SEND_EMAIL, chunk=f"{'b' * 32}.{i}") for i in range(2 * PARK_PAGE + 1)]
    addresses = [f"user{i}@example.com" for i in range(2500)]
    store.suppressions.add(*addresses)
    store.suppressions.erase(addresses[0])  # the lift hands a hash beside each address
    with _watch(real_redis) as watched:
        store.parked.park_many(calls, store.now() + 60)
        store.suppressions.remove(*addresses)
        store.suppressions.add_synced(addresses, since=store.now() - 60)
        store.parked.take(lease=30, limit=200)
    seen: dict[str, list[int]] = {}
    for script in ("park", "lift", "sync_suppressed", "take_due"):
        for argv in _calls(watched, script):
            assert len(argv[0]) <= SMALL, (script, argv[0][:80])
            assert isinstance(json.loads(argv[0]), dict)
            seen.setdefault(script, []).append(len(argv) - 1)
    assert seen["park"] == [PARK_PAGE, PARK_PAGE, 1]
    # each address beside its hash, a page of 500 per call, a lift's as a sync's
    assert seen["lift"] == [1000] * 5
    assert seen["sync_suppressed"] == [1000] * 5
    assert seen["take_due"] == [0]


def test_a_first_page_whose_payload_is_not_there_writes_nothing(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=RETENTION)
    batch_id = "c" * 32
    chunk = StoredChunk(
        id=chunk_id_for(batch_id, 0), batch=batch_id, index=0, kind=Kind.EMAIL,
        state=State.QUEUED, queue=Queue.EMAIL, recipients=["ann@example.com"],
        fields={"to": ["ann@example.com"]},
    ).to_hash()  # fmt: skip
    args = CreateArgs(
        ttl=RETENTION, batch_id=batch_id, mode="whole", batch={"id": batch_id}, refused=[],
        chunks=[chunk],
    )  # fmt: skip
    head = [keys.idempotency("k-1"), keys.batch(batch_id), keys.batch_payload(batch_id),
            keys.active(), keys.ledger(batch_id), keys.ledger_counts(batch_id)]  # fmt: skip
    with pytest.raises(redis.ResponseError, match="no payload"):
        store.batches._create(keys=[*head, keys.chunk(chunk["id"])], args=scripts.args(args))
    assert redis_backend.keys(keys.PREFIX + "*") == []  # the key is not taken either


def test_a_repeated_key_deletes_the_payload_its_copy_wrote(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=RETENTION)
    first, second = "d" * 32, "e" * 32
    for batch_id in (first, second):
        store.batches.create(
            batch_id, kind=Kind.EMAIL, chunks=_specs(batch_id, 1), payload={"subject": batch_id},
            queue=Queue.EMAIL, idempotency_key="order-9",
        )  # fmt: skip
    assert store.batches.payload(first) == {"subject": first}
    assert not redis_backend.exists(keys.batch_payload(second))


def test_lift_pairs_each_address_with_its_hash_a_page_at_a_time(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=RETENTION)
    addresses = [f"user{i}@example.com" for i in range(1200)]
    store.suppressions.add(*addresses[1::2])
    store.suppressions.add(addresses[0])
    assert store.suppressions.erase(addresses[0])  # suppressed as its hash only
    assert store.suppressions.remove(*addresses) == [addresses[0], *addresses[1::2]]
    assert store.suppressions.matching(addresses) == set()
    keys_ = [keys.suppressed(), keys.suppressed_erased(), keys.suppressed_lifted()]
    named = scripts.args({"kept": 60.0, "n": 2})
    with pytest.raises(redis.ResponseError, match="3 ARGVs for 2 addresses"):
        store.suppressions._lift(keys=keys_, args=[*named, "a@example.com", "", "b@example.com"])


def test_many_calls_are_parked_a_page_at_a_time(redis_backend: Any) -> None:
    store = Store.connect(redis_backend, retention=RETENTION)
    calls = [Call(TaskName.SEND_EMAIL, chunk=f"{'f' * 32}.{i}") for i in range(2 * PARK_PAGE + 7)]
    store.parked.park_many(calls, store.now() - 1)
    assert store.parked.count() == len(calls)
    due = store.parked.take(lease=30, limit=len(calls))
    assert sorted(c.chunk or "" for c, _ in due.calls) == sorted(c.chunk or "" for c in calls)
