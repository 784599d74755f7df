"""The beat jobs, each run as its task against the real sandbox and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from outbox import send_email
from outbox.core.queues import Queue
from outbox.core.settings import Settings
from outbox.core.smtp2go.endpoints import EMAIL_SEND, SUPPRESSION_ADD
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.core.store.limits import Limit
from outbox.core.views import load_record
from outbox.worker import beat
from outbox.worker.runtime import Runtime, set_runtime
from outbox.worker.webhooks.parse import normalise
from outbox.worker.webhooks.tasks import NO_MATCH, record
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, wait_all_done
from tests.integration.test_faults import SENDER, assert_intent, delivered
from tests.integration.test_faults import beat as beat_process

pytestmark = pytest.mark.integration

ORPHAN = "0" * 32


def _create(rt: Runtime, batch_id: str, specs: list[ChunkSpec], payload: dict[str, object]) -> None:
    rt.store.batches.create(
        batch_id, kind=Kind.EMAIL, chunks=specs, payload=payload, queue=Queue.EMAIL
    )


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
    rt.client.call(
        EMAIL_SEND,
        {"sender": "s@example.com", "to": ["a@example.com"], "subject": "x", "text_body": "y"},
    )
    beat.stats_snapshot()
    snapshot = json.loads(rt.redis.get(keys.stats_snapshot()))
    assert snapshot["taken_at"] > 0
    assert snapshot["data"]["request_id"]
    assert rt.redis.ttl(keys.stats_snapshot()) > 0


@pytest.mark.timeout(30)
def test_suppression_sync_fills_the_local_set(rt: Runtime, sandbox: Sandbox) -> None:
    for address in ("Gone@Example.com", "blocked.example.org"):
        rt.client.call(SUPPRESSION_ADD, {"email_address": address, "block_description": "test"})
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
        ChunkSpec(chunk_id_for(ORPHAN, 0), 0, ["o@example.com"], {"to": ["o@example.com"]}),
        ChunkSpec(chunk_id_for(ORPHAN, 1), 1, ["p@example.com"], {"to": ["p@example.com"]}),
    ]
    payload = {"sender": "s@example.com", "subject": "x", "text_body": "y"}
    _create(rt, ORPHAN, specs, payload)
    gone = Limit("send", rt.send_limit.windows, lease=0.01, ttl=600, line_lease=60)
    rt.store.batches.claim(
        chunk_id_for(ORPHAN, 1), limit=gone, worker="gone", token="t", max_wait=5
    )
    past = rt.store.now() - 60
    for spec in specs:
        rt.store.batches.touch_active(spec.id, past)

    assert beat.sweep_stuck() == 2
    assert beat.sweep_stuck() == 0  # touched: not published again at once

    class _Handle:
        id = ORPHAN

        def status(self) -> object:
            return load_record(rt.store, ORPHAN)

    [record] = wait_all_done([_Handle()], timeout=60)
    assert record.state is State.SENT
    abandoned = record.chunks[1]
    assert abandoned.ambiguous is not None
    assert "not in activity/search" in abandoned.ambiguous
    assert sorted(sandbox_recipients(sandbox)()) == ["o@example.com", "p@example.com"]


@pytest.mark.timeout(30)
def test_expiry_drops_index_entries_of_expired_records(rt: Runtime) -> None:
    old = "0" * 31 + "1"
    spec = ChunkSpec(chunk_id_for(old, 0), 0, ["a@example.com"], {"to": ["a@example.com"]})
    _create(rt, old, [spec], {})
    rt.store.batches.finish(spec.id, State.DEAD, limit=rt.send_limit)
    assert rt.store.batches.dead_letters()
    rt.redis.delete(keys.chunk(spec.id), keys.batch(old))  # what the TTL does
    assert beat.expire_records() >= 1
    assert rt.store.batches.dead_letters() == []


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

    late = "1" * 32
    spec = ChunkSpec(chunk_id_for(late, 0), 0, ["late@example.com"], {"to": ["x"]})
    _create(rt, late, [spec], {})
    rt.store.batches.finish(spec.id, State.SENT, limit=rt.send_limit, email_id="LATE-1")

    assert beat.rematch_events() == 2
    record_ = load_record(rt.store, late)
    assert record_ is not None
    assert [e["event"] for e in record_.chunks[0].events] == ["delivered"]  # once
    parked = [json.loads(x) for x in rt.redis.lrange(keys.webhook_unmatched(), 0, -1)]
    assert [(p["email_id"], p["unmatched"]) for p in parked] == [("NEVER", NO_MATCH)]
    assert beat.rematch_events() == 0


@pytest.mark.timeout(30)
def test_api_jobs_wait_out_a_cool_down_and_log_one_line_when_the_api_fails(
    rt: Runtime, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    rt.store.limits.cool_down(rt.send_limit, 5)
    with caplog.at_level("INFO", logger="outbox.worker.beat"):
        assert beat.stats_snapshot() is None
    assert "skipped: cooling down" in caplog.text
    assert sandbox.stats()["requests"] == 0  # the fleet's cool-down holds beat off too
    rt.redis.delete(keys.cooldown())
    caplog.clear()
    sandbox.configure(fail_next=10, fail_status=503)
    with caplog.at_level("INFO", logger="outbox.worker.beat"):
        assert beat.stats_snapshot() is None
    [line] = [r for r in caplog.records if r.name == "outbox.worker.beat"]
    assert "trying again in" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback
    [(member, _)] = rt.redis.zrange(keys.parked(), 0, -1, withscores=True)
    assert json.loads(member)["task"] == "outbox.beat.stats_snapshot"
    assert json.loads(member)["args"] == [2]


@pytest.mark.timeout(90)
def test_an_exhausted_quota_throttles_then_a_raised_one_sends_exactly_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The month's allowance covers two of three 100-recipient emails: the third waits
    ``throttled`` (never refused, never sent over the quota) until the operator raises
    the allowance and the next quota read lets it go."""
    sandbox.configure(cycle_max=250)
    env = {"OUTBOX_QUOTA_INTERVAL": "1"}
    fleet.start(concurrency=4, **env)
    with beat_process(fleet, tmp_path, **env):
        wait_until(lambda: producer.store.account.quota() is not None, timeout=30, what="a read")
        handles = [
            send_email(SENDER, [f"q{i}-{j}@example.com" for j in range(100)], "Hi", text_body="x")
            for i in range(3)
        ]
        wait_until(
            lambda: (
                [h.status().state for h in handles].count(State.SENT) == 2
                and State.THROTTLED in [h.status().state for h in handles]
            ),
            timeout=30,
            what="two sent, one throttled",
        )
        [waiting] = [h for h in handles if h.status().state is State.THROTTLED]
        assert producer.store.account.throttled() == [f"{waiting.id}.0"]
        assert sum(delivered(sandbox).values()) == 200
        sandbox.configure(cycle_max=1000)  # the allowance is raised
        records = wait_all_done(handles, timeout=30)
    assert all(r.state is State.SENT for r in records)
    assert assert_intent(records, delivered(sandbox)).sent == 300
    history = [h["state"] for h in waiting.status().chunks[0].history]
    assert history[:2] == ["queued", "throttled"]
    assert history[-1] == "sent"
