"""The beat jobs, each run as its task against the real sandbox and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from outbox.worker import beat, keys
from outbox.worker.records import load_record
from outbox.worker.runtime import Runtime, set_runtime
from outbox.worker.settings import Settings
from outbox.worker.states import State
from outbox.worker.store import ChunkSpec, chunk_id_for
from outbox.worker.webhooks.events import normalise
from outbox.worker.webhooks.tasks import NO_MATCH, record
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, wait_all_done

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(sandbox: Sandbox, producer: Runtime) -> Iterator[Runtime]:
    """This process as beat would run it: with the API key and a short stuck timeout."""
    runtime = Runtime.from_settings(
        Settings(
            SMTP2GO_BASE_URL=sandbox.base_url,
            SMTP2GO_API_KEY=sandbox.api_key,
            OUTBOX_STUCK_AFTER=10,
        )
    )
    set_runtime(runtime)
    yield runtime
    runtime.close()
    set_runtime(producer)


@pytest.mark.timeout(30)
def test_stats_snapshot_keeps_the_summary(rt: Runtime, sandbox: Sandbox) -> None:
    rt.client.send_email(sender="s@example.com", to=["a@example.com"], subject="x", text_body="y")
    beat.stats_snapshot()
    snapshot = json.loads(rt.redis.get(keys.stats_snapshot()))
    assert snapshot["taken_at"] > 0
    assert snapshot["data"]["request_id"]
    assert rt.redis.ttl(keys.stats_snapshot()) > 0


@pytest.mark.timeout(30)
def test_suppression_sync_fills_the_local_set(rt: Runtime, sandbox: Sandbox) -> None:
    for address in ("Gone@Example.com", "blocked.example.org"):
        rt.client.suppression_add(email_address=address, block_description="test")
    assert beat.sync_suppressions() == 2
    members = {m.decode() for m in rt.redis.smembers(keys.suppressed())}
    assert members == {"gone@example.com", "blocked.example.org"}


@pytest.mark.timeout(90)
def test_sweep_publishes_orphaned_and_abandoned_chunks(
    rt: Runtime, fleet: Fleet, sandbox: Sandbox
) -> None:
    fleet.start(concurrency=4)
    # A producer that died after recording (nothing published), and a worker that died
    # mid-request (claimed, lease long gone): both left in the active index.
    specs = [
        ChunkSpec(chunk_id_for("orphan", 0), 0, ["o@example.com"], {"to": ["o@example.com"]}),
        ChunkSpec(chunk_id_for("orphan", 1), 1, ["p@example.com"], {"to": ["p@example.com"]}),
    ]
    payload = {"sender": "s@example.com", "subject": "x", "text_body": "y"}
    rt.store.create("orphan", kind="email", chunks=specs, payload=payload)
    rt.store.claim(chunk_id_for("orphan", 1), "orphan", worker="gone", lease=0.01)
    past = rt.store.now() - 60
    for spec in specs:
        rt.store.touch_active(spec.id, past)

    assert beat.sweep_stuck() == 2
    assert beat.sweep_stuck() == 0  # touched: not published again at once

    class _Handle:
        id = "orphan"

        def status(self) -> object:
            return load_record(rt.store, "orphan")

    [record] = wait_all_done([_Handle()], timeout=60)
    assert record.state is State.SENT
    abandoned = record.chunks[1]
    assert abandoned.ambiguous is not None
    assert "not in activity/search" in abandoned.ambiguous
    assert sorted(sandbox_recipients(sandbox)()) == ["o@example.com", "p@example.com"]


@pytest.mark.timeout(30)
def test_expiry_drops_index_entries_of_expired_records(rt: Runtime) -> None:
    spec = ChunkSpec(chunk_id_for("old", 0), 0, ["a@example.com"], {"to": ["a@example.com"]})
    rt.store.create("old", kind="email", chunks=[spec], payload={})
    rt.store.claim(spec.id, "old", worker="w", lease=30)
    rt.store.finish(spec.id, "old", State.DEAD, failed=1)
    assert rt.store.dead_letters()
    rt.redis.delete(keys.chunk(spec.id), keys.batch("old"))  # what the TTL does
    assert beat.expire_records() >= 1
    assert rt.store.dead_letters() == []


@pytest.mark.timeout(30)
def test_rematch_puts_parked_events_on_sends_recorded_later(rt: Runtime) -> None:
    """A send settled late (an ambiguous attempt found in activity/search) gets its
    email_id after the provider's events were parked; the beat job records them once."""

    def event(name: str, email_id: str) -> dict[str, object]:
        return normalise(
            {"event": name, "email_id": email_id, "rcpt": "late@example.com"},
            received_at=1_700_000_000.0,
        )

    delivered = event("delivered", "LATE-1")
    assert record(rt, delivered).value == "unmatched"
    assert record(rt, delivered).value == "unmatched"  # the provider's retry, parked too
    assert record(rt, event("delivered", "NEVER")).value == "unmatched"
    assert beat.rematch_events() == 0  # nothing indexed yet

    spec = ChunkSpec(chunk_id_for("late", 0), 0, ["late@example.com"], {"to": ["x"]})
    rt.store.create("late", kind="email", chunks=[spec], payload={})
    rt.store.finish(spec.id, "late", State.SENT, email_id="LATE-1", succeeded=1)

    assert beat.rematch_events() == 2
    record_ = load_record(rt.store, "late")
    assert record_ is not None
    assert [e["event"] for e in record_.chunks[0].events] == ["delivered"]  # once
    parked = [json.loads(x) for x in rt.redis.lrange(keys.webhook_unmatched(), 0, -1)]
    assert [(p["email_id"], p["unmatched"]) for p in parked] == [("NEVER", NO_MATCH)]
    assert beat.rematch_events() == 0
