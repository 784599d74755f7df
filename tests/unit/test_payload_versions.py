"""A fleet in mid-upgrade: the payload format's version on every send task, a message
from an older producer delivered once, one from a newer producer kept for a replay."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest

from outbox import send_email
from outbox.core import wire
from outbox.core.queues import Queue, TaskName
from outbox.core.settings import Settings
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.states import Kind, State
from outbox.core.store import keys
from outbox.core.store.batches import ClaimOutcome
from outbox.core.store.chunks import ChunkSpec, batch_id_of
from outbox.core.wire import (
    PAYLOAD_VERSION,
    VERSION_HEADER,
    UnknownPayloadVersion,
    check_version,
)
from outbox.worker import tasks
from outbox.worker.delivery import Delivery
from outbox.worker.publish import Task, chunk_task, publish
from outbox.worker.runtime import Runtime, set_runtime

KEY = "api-" + "0" * 32
#: The message a producer of 0.2.0 put on the Redis broker for one send_email, as the
#: broker kept it (captured byte for byte: kombu's envelope, Celery's protocol 2).
OLD_MESSAGE = Path(__file__).parent.parent / "fixtures" / "broker-0.2.0-send_email.json"


class Api:
    """Every request the worker made, each answered as a send SMTP2GO accepted."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(json.loads(request.content))
        data = {"succeeded": 1, "failed": 0, "failures": [], "email_id": f"E-{len(self.seen)}"}
        return httpx.Response(200, json={"request_id": "r1", "data": data})


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def rt(api: Api) -> Iterator[Runtime]:
    settings = Settings(
        SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="http://127.0.0.1:9/v3", OUTBOX_RATE_LIMIT="1000/s"
    )
    client = SMTP2GOClient(settings.base_url, KEY, transport=httpx.MockTransport(api))
    runtime = Runtime.from_settings(settings, redis_client=fakeredis.FakeRedis(), client=client)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


def _old_message() -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The fixture's headers, chunk id and payload, as a worker decodes them."""
    message = json.loads(OLD_MESSAGE.read_bytes())
    (chunk_id, payload), _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"], chunk_id, payload


def _record_as_old_producer(rt: Runtime, chunk_id: str, payload: dict[str, Any]) -> None:
    """The chunk's record as a producer of 0.2.0 wrote it: no payload version on it."""
    batch_id = batch_id_of(chunk_id)
    base = {k: v for k, v in payload.items() if k != "to"}
    spec = ChunkSpec(chunk_id, 0, list(payload["to"]), {"to": payload["to"]}, None)
    rt.store.batches.create(
        batch_id, kind=Kind.EMAIL, chunks=[spec], payload=base, queue=Queue.EMAIL
    )


def _run(task: Any, headers: dict[str, Any], *args: Any) -> Any:
    """``task``'s body under a worker's request carrying the message's headers."""
    task.push_request(**{**headers, "called_directly": False, "hostname": "w1"})
    try:
        return task.run(*args)
    finally:
        task.pop_request()


@pytest.mark.parametrize(
    ("given", "read"),
    [(None, 1), (1, 1), (2, 2)],
)
def test_a_worker_reads_its_own_version_and_the_one_before(given: Any, read: int) -> None:
    assert PAYLOAD_VERSION == 2
    assert check_version(given) == read


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (3, "newer than this worker reads; upgrade the workers, then `outbox replay` it"),
        (0, "not a version outbox writes"),
        ("2", "not a version outbox writes"),
        (True, "not a version outbox writes"),
    ],
)
def test_any_other_version_is_refused_with_the_reason(given: Any, why: str) -> None:
    with pytest.raises(UnknownPayloadVersion) as refused:
        check_version(given)
    assert str(refused.value) == f"payload version {given!r} is {why} (it reads 1 to 2)"


def test_an_older_producers_message_is_delivered_exactly_once(rt: Runtime, api: Api) -> None:
    headers, chunk_id, payload = _old_message()
    assert VERSION_HEADER not in headers  # 0.2.0 knew no versions
    _record_as_old_producer(rt, chunk_id, payload)

    assert _run(tasks.send_email, headers, chunk_id, payload) == State.SENT.value
    # the broker delivers it again (a redelivery after a lost ack): nothing is resent
    assert _run(tasks.send_email, headers, chunk_id, payload) == State.SENT.value

    [body] = api.seen
    assert body["to"] == ["ann@example.com"]
    assert {"header": "Reply-To", "value": "books@example.com"} in body["custom_headers"]
    assert {"header": "X-Outbox-Id", "value": chunk_id} in body["custom_headers"]
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.SENT


def test_an_older_producers_record_is_published_again_as_version_1(rt: Runtime) -> None:
    """The relay, the sweep and replays rebuild a message from its record: one an
    older producer wrote goes out unmarked as it was, not claimed to be the new format."""
    _headers, chunk_id, payload = _old_message()
    _record_as_old_producer(rt, chunk_id, payload)
    task = chunk_task(rt.store.batches, chunk_id)
    assert task is not None
    assert (task.name, task.args, task.version) == (TaskName.SEND_EMAIL, [chunk_id, payload], 1)


def test_a_producer_marks_its_record_and_every_message(rt: Runtime, memory_broker: Any) -> None:
    from outbox.worker.celery_app import app

    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    fields = rt.redis.hgetall(keys.batch(handle.id))
    assert fields[VERSION_HEADER.encode()] == str(PAYLOAD_VERSION).encode()
    task = chunk_task(rt.store.batches, f"{handle.id}.0")
    assert task is not None
    assert task.version == PAYLOAD_VERSION
    publish([task])  # as the relay would, a second message for the same chunk
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("email")
        got = [queue.get(timeout=1) for _ in range(2)]
        for message in got:
            message.ack()
        queue.close()
    assert [m.headers[VERSION_HEADER] for m in got] == [PAYLOAD_VERSION, PAYLOAD_VERSION]


def test_a_newer_producers_message_ends_dead_with_its_reason_and_replays(
    rt: Runtime, api: Api, memory_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker one release behind its producers sends nothing it cannot read: the
    chunk is dead, saying why, and ``outbox replay`` brings it back with its version."""
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    chunk_id = f"{handle.id}.0"
    rt.redis.hset(keys.batch(handle.id), VERSION_HEADER, "3")  # as a newer producer marks
    newer = chunk_task(rt.store.batches, chunk_id)
    assert newer is not None
    assert newer.version == 3

    state = _run(tasks.send_email, {VERSION_HEADER: 3, "id": "t1"}, *newer.args)

    assert state == State.DEAD.value
    assert api.seen == []
    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.DEAD
    assert chunk.last_error is not None
    assert chunk.last_error["type"] == "UnknownPayloadVersion"
    assert chunk.last_error["version"] == 3
    assert "upgrade the workers, then `outbox replay` it" in chunk.last_error["message"]
    assert rt.redis.zscore(keys.dead_letters(), chunk_id) is not None
    # replayed once the workers are upgraded: the record is whole, the message keeps
    # its version, and a worker that reads version 3 sends it
    assert rt.store.batches.replay(chunk_id)
    again = chunk_task(rt.store.batches, chunk_id)
    assert again == Task(TaskName.SEND_EMAIL, newer.args, Queue.EMAIL, 3)
    monkeypatch.setattr(wire, "PAYLOAD_VERSION", 3)
    assert (
        _run(tasks.send_email, {VERSION_HEADER: again.version, "id": "t2"}, *again.args) == "sent"
    )
    assert len(api.seen) == 1


@pytest.mark.parametrize("poison", [False, True])
def test_an_unreadable_task_leaves_a_chunk_another_worker_is_sending_alone(
    rt: Runtime, api: Api, memory_broker: Any, monkeypatch: pytest.MonkeyPatch, poison: bool
) -> None:
    """Mid-upgrade, a newer worker holds the chunk ``sending`` under its lease (its
    request out) when a duplicate of the task reaches an older worker: the older one
    cannot read it, but the chunk is not its to end. Only the holder finishes it, and
    it is sent once, never dead and replayable."""
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    chunk_id = f"{handle.id}.0"
    rt.redis.hset(keys.batch(handle.id), VERSION_HEADER, "3")
    task = chunk_task(rt.store.batches, chunk_id)
    assert task is not None
    _chunk, payload = task.args
    newer = Delivery(rt, Kind.EMAIL, chunk_id, "newer")
    claim = newer._claim("newer.1")
    assert claim.outcome is ClaimOutcome.CLAIMED

    older = Delivery(rt, Kind.EMAIL, chunk_id, "older")
    given = {**payload, "sender": 7} if poison else payload
    assert older.run(given, version=2 if poison else 3) == "busy"

    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.SENDING
    assert rt.redis.zscore(keys.dead_letters(), chunk_id) is None
    monkeypatch.setattr(wire, "PAYLOAD_VERSION", 3)
    assert newer._act(wire.check(Kind.EMAIL, payload), claim, "newer.1") == "sent"
    assert len(api.seen) == 1


def test_an_unreadable_task_ends_dead_only_once_claimed_and_frees_its_slot(
    rt: Runtime, api: Api, memory_broker: Any
) -> None:
    """The worker that claims a chunk it cannot read ends it dead, and the slot it took
    is free at once: the next send is not held back for it."""
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    chunk_id = f"{handle.id}.0"
    rt.redis.hset(keys.batch(handle.id), VERSION_HEADER, "3")
    task = chunk_task(rt.store.batches, chunk_id)
    assert task is not None

    assert Delivery(rt, Kind.EMAIL, chunk_id, "older").run(task.args[1], version=3) == "dead"

    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.DEAD
    assert chunk.last_error is not None
    assert chunk.last_error["type"] == "UnknownPayloadVersion"
    assert rt.redis.zscore(keys.dead_letters(), chunk_id) is not None
    assert api.seen == []
    windows = rt.send_limit.keys()[6:]  # each window's busy and answered slots
    assert [rt.redis.zcard(w) for w in windows] == [0] * len(windows)


def test_an_unreadable_task_does_not_look_up_a_dead_workers_attempt(
    rt: Runtime, api: Api, memory_broker: Any
) -> None:
    """The newer worker died mid-request (its lease ran out): the older one cannot read
    the request to look it up, so the chunk ends dead saying the attempt's fate is
    unknown, for an operator to check before a replay."""
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    chunk_id = f"{handle.id}.0"
    task = chunk_task(rt.store.batches, chunk_id)
    assert task is not None
    assert Delivery(rt, Kind.EMAIL, chunk_id, "newer")._claim("newer.1").outcome is (
        ClaimOutcome.CLAIMED
    )
    rt.redis.hset(keys.chunk(chunk_id), "lease_until", "1")  # its worker died

    assert Delivery(rt, Kind.EMAIL, chunk_id, "older").run(task.args[1], version=3) == "dead"

    chunk = rt.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.DEAD
    assert chunk.last_error is not None
    assert chunk.last_error["type"] == "UnknownPayloadVersion"
    assert "of unknown fate, not looked up" in str(chunk.ambiguous)
    assert api.seen == []


@pytest.mark.parametrize(
    ("field", "header"), [(None, 1), ("1", 1), ("2", 2), ("3", 3), ("v3", "v3")]
)
def test_a_records_version_is_published_as_the_worker_reads_it(
    rt: Runtime, memory_broker: Any, field: str | None, header: int | str
) -> None:
    """One reading of the version, whoever publishes the chunk again: what the record
    says is what its message's header says, and the worker reads or refuses it so."""
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    memory_broker.drain()
    if field is None:
        rt.redis.hdel(keys.batch(handle.id), VERSION_HEADER)
    else:
        rt.redis.hset(keys.batch(handle.id), VERSION_HEADER, field)
    task = chunk_task(rt.store.batches, f"{handle.id}.0")
    assert task is not None
    assert task.version == header == wire.recorded_version(field)
    if header in (1, 2):
        assert check_version(task.version) == header
    else:
        with pytest.raises(UnknownPayloadVersion):
            check_version(task.version)
