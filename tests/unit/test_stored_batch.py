"""The batch hash's one definition (``store/batch.py``) keeps the layout it always had."""

from __future__ import annotations

import json
import time
from typing import Any

from outbox import send_email
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.batch import StoredBatch, count_field
from outbox.core.wire import PAYLOAD_VERSION, VERSION_HEADER
from outbox.worker.runtime import Runtime

CALLBACK = {"task": "app.done", "args": [1], "kwargs": {}, "options": {}}


def _raw(rt: Runtime, batch_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in rt.redis.hgetall(keys.batch(batch_id)).items()}


def test_a_send_writes_the_batch_fields_it_always_wrote(runtime: Runtime) -> None:
    runtime.store.suppressions.add("gone@example.org")
    due = time.time() + 3600
    handle = send_email(
        "s@example.com",
        ["ann@example.org", "gone@example.org"],
        "Hi",
        text_body="x",
        idempotency_key="layout-1",
        send_at=due,
        callback=CALLBACK,
        tenant="acme",
    )
    raw = _raw(runtime, handle.id)
    counters = {f"n:{s.value}": "1" if s is State.QUEUED else "0" for s in State}
    fixed = {
        "id": handle.id,
        "kind": "email",
        "chunks": "1",
        "recipients": "1",
        **counters,
        "recipients_succeeded": "0",
        "recipients_failed": "0",
        "lane": "transactional",
        "tenant": "acme",
        "idempotency_key": "layout-1",
        VERSION_HEADER: str(PAYLOAD_VERSION),
        "send_at": f"{due:.6f}",
        "rejected": '["gone@example.org"]',
    }
    assert {k: raw[k] for k in fixed} == fixed
    assert set(raw) == {*fixed, "fingerprint", "callback", "created_at"}
    assert json.loads(raw["callback"])["task"] == "app.done"
    assert ": " not in raw["callback"]  # compact JSON, as before

    stored = runtime.store.batches.stored_batch(handle.id)
    assert stored is not None
    assert (stored.kind, stored.chunks, stored.count(State.QUEUED)) == (Kind.EMAIL, 1, 1)
    assert (stored.tenant, stored.send_at, stored.rejected) == (
        "acme",
        float(raw["send_at"]),
        ["gone@example.org"],
    )
    assert stored.fingerprint == raw["fingerprint"]
    assert stored.callback is not None
    assert stored.callback["task"] == "app.done"


def test_every_field_round_trips() -> None:
    full = StoredBatch(
        id="b" * 32,
        kind=Kind.SMS,
        chunks=3,
        recipients=250,
        counts={s: i for i, s in enumerate(State)},
        recipients_succeeded=100,
        recipients_failed=50,
        lane="bulk",
        tenant="acme",
        idempotency_key="k",
        fingerprint="f",
        payload_version="2",
        send_at=1.5,
        callback=CALLBACK,
        callback_sent_at=2.5,
        rejected=["a@example.org"],
        trace={"traceparent": "00-ab-cd-01"},
        created_at=3.5,
        staged=4.5,
        finished_at=5.5,
        canceled_at=6.5,
        paused_at=7.5,
        paused_by="ops",
    )
    raw = full.to_hash()
    assert StoredBatch.from_hash(raw) == full
    assert raw[count_field(State.PAUSED)] == str(full.count(State.PAUSED))
    # bytes, as Redis answers
    encoded: dict[Any, Any] = {k.encode(): v.encode() for k, v in raw.items()}
    assert StoredBatch.from_hash(encoded) == full
