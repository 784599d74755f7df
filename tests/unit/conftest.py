"""Unit-test fixtures: Redis backends (fakeredis, and real Redis when it answers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis

from outbox.core.redis_url import connect
from outbox.core.settings import Settings
from outbox.worker.runtime import Runtime, set_runtime


def _real_redis() -> Any:
    # The session's own server (tests/conftest.py), database 12.
    url = os.environ["OUTBOX_REDIS_URL"].rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url} for the real-Redis variant")
    return client


@pytest.fixture(params=["fakeredis", "redis", "cluster"])
def redis_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The same tests against fakeredis (with Lua), a real Redis server and a real
    three-node Redis Cluster (every script's keys must share one slot there)."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis()
        return
    if request.param == "cluster":
        client = connect(request.getfixturevalue("redis_cluster").url)
    else:
        client = _real_redis()
    client.flushdb(asynchronous=True)
    yield client
    client.flushdb(asynchronous=True)
    client.close()


@pytest.fixture
def fake_redis() -> Any:
    return fakeredis.FakeRedis()


@pytest.fixture
def runtime(fake_redis: Any) -> Iterator[Runtime]:
    """A runtime on fakeredis, installed for the producers and tasks of this process."""
    settings = Settings(
        SMTP2GO_API_KEY="api-" + "0" * 32,
        SMTP2GO_BASE_URL="http://127.0.0.1:9/v3",
        OUTBOX_RATE_LIMIT="1000/s",
    )
    rt = Runtime.from_settings(settings, redis_client=fake_redis)
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.fixture
def memory_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the app at kombu's in-memory transport; yields a reader of published tasks."""
    from outbox.worker.celery_app import app

    # Celery reads CELERY_BROKER_URL from the environment before its own config.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    saved = app.conf.broker_url
    app.conf.broker_url = "memory://"
    app._pool = None
    app.amqp._producer_pool = None
    published = _Published(app)
    published.drain()  # whatever an earlier test left in the process-wide memory queues
    try:
        yield published
    finally:
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = saved


class _Published:
    """Drains the in-memory broker's queues into ``(task name, args, queue)`` tuples."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def drain(
        self, queues: tuple[str, ...] = ("email", "sms", "bulk")
    ) -> list[tuple[str, list[Any], str]]:
        out: list[tuple[str, list[Any], str]] = []
        with self.app.connection_for_read() as conn:
            for queue in queues:
                simple = conn.SimpleQueue(queue)
                while True:
                    try:
                        message = simple.get(block=False)
                    except simple.Empty:
                        break
                    out.append((message.headers["task"], message.payload[0], queue))
                    message.ack()
                simple.close()
        return out


def sent_batch(rt: Runtime, email_ids: list[str], recipients: list[str] | None = None) -> str:
    """A recorded send whose chunks (one recipient each) were accepted with ``email_ids``."""
    from outbox.core.queues import Queue
    from outbox.core.states import Kind, State
    from outbox.core.store.chunks import ChunkSpec, chunk_id_for

    batch_id = f"{abs(hash(tuple(email_ids))) % 10**32:032x}"
    rcpts = recipients or [f"user{i}@example.org" for i in range(len(email_ids))]
    specs = [ChunkSpec(chunk_id_for(batch_id, i), i, [rcpts[i]]) for i in range(len(email_ids))]
    rt.store.batches.create(batch_id, kind=Kind.EMAIL, chunks=specs, payload={}, queue=Queue.EMAIL)
    for i, email_id in enumerate(email_ids):
        rt.store.batches.finish(
            chunk_id_for(batch_id, i), State.SENT, limit=rt.send_limit, email_id=email_id
        )
    return batch_id
