"""A fleet in mid-upgrade, on real workers: a message as a producer of 0.2.0 put it on
the broker (the exact bytes) and one from today's producer are each delivered once; one
in a payload format newer than the workers read ends dead with the reason, and
``outbox replay`` puts it back on the broker with its version, never sent as a guess."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from outbox import Handle, send_email, status
from outbox.core.queues import Queue, TaskName
from outbox.core.states import Kind, State
from outbox.core.store.chunks import ChunkSpec, batch_id_of
from outbox.core.wire import VERSION_HEADER
from outbox.worker.publish import Task, publish
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_cli import outbox
from tests.integration.test_faults import delivered

OLD_MESSAGE = Path(__file__).parent.parent / "fixtures" / "broker-0.2.0-send_email.json"


def _dead(batch_id: str, replays: int) -> bool:
    record = status(batch_id)
    chunk = record.chunks[0]
    return record.state is State.DEAD and chunk.replays == replays


def test_older_current_and_newer_payloads(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, redis_db: tuple[str, str]
) -> None:
    broker_url, _records = redis_db
    batches = producer.store.batches
    # 1. what a producer of 0.2.0 left: its record (no version on it) and its message
    raw = OLD_MESSAGE.read_bytes().strip()
    message = json.loads(raw)
    assert VERSION_HEADER not in message["headers"]
    old_chunk = "0f24b0250f24b0250f24b0250f24b025.0"
    old_payload = {
        "sender": "Shop <shop@example.com>",
        "subject": "Your receipt",
        "html_body": "<p>Thanks!</p>",
        "custom_headers": [{"header": "Reply-To", "value": "books@example.com"}],
    }
    spec = ChunkSpec(old_chunk, 0, ["ann@example.com"], {"to": ["ann@example.com"]}, None)
    batches.create(
        batch_id_of(old_chunk),
        kind=Kind.EMAIL,
        chunks=[spec],
        payload=old_payload,
        queue=Queue.EMAIL,
    )
    redis.Redis.from_url(broker_url).lpush("email", raw)
    # 2. today's producer
    current = send_email("shop@example.com", ["bob@example.com"], "Hi", text_body="x")
    # 3. a producer newer than the workers: its record and message say version 3
    newer_batch = "1f24b0250f24b0250f24b0250f24b025"
    newer_chunk = f"{newer_batch}.0"
    newer_payload = {"sender": "shop@example.com", "subject": "Hi", "text_body": "x"}
    spec = ChunkSpec(newer_chunk, 0, ["cat@example.com"], {"to": ["cat@example.com"]}, None)
    batches.create(
        newer_batch,
        kind=Kind.EMAIL,
        chunks=[spec],
        payload=newer_payload,
        queue=Queue.EMAIL,
        extra={VERSION_HEADER: "3"},
    )
    args = [newer_chunk, {**newer_payload, "to": ["cat@example.com"]}]
    publish([Task(TaskName.SEND_EMAIL, args, Queue.EMAIL, 3)])

    fleet.start(concurrency=5)

    old = Handle(id=batch_id_of(old_chunk), kind="email", chunks=1, recipients=1)
    [old_record, current_record] = wait_all_done([old, current], timeout=60)
    assert old_record.state is State.SENT
    assert current_record.state is State.SENT
    wait_until(lambda: _dead(newer_batch, 0), timeout=30, what="the newer payload dead")
    error = status(newer_batch).chunks[0].last_error
    assert error is not None
    assert error["type"] == "UnknownPayloadVersion"
    assert "upgrade the workers, then `outbox replay` it" in error["message"]

    # replayed too early (no worker reads version 3 yet): dead again, still whole
    replayed = outbox("replay", newer_chunk)
    assert replayed.returncode == 0, replayed.stderr
    assert newer_chunk in replayed.stdout
    wait_until(lambda: _dead(newer_batch, 1), timeout=30, what="the replay dead again")
    assert status(newer_batch).chunks[0].last_error == error

    counts = delivered(sandbox)
    assert counts["ann@example.com"] == 1
    assert counts["bob@example.com"] == 1
    assert counts["cat@example.com"] == 0
