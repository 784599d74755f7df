"""The queue end to end with RabbitMQ as the broker (records and rate limit stay in Redis).

The same flow as on Redis, once: this process publishes through ``worker.app.app`` to
``amqp://`` and a real ``celery -A outbox.worker worker`` consumes from it, for a mix that
touches all three queues (a 1,200-recipient newsletter goes to ``bulk``), a delayed send
(parked in Redis, then published), single emails and an SMS. Every recipient reaches the
sandbox exactly once and the queues end empty. Then a worker is SIGKILLed mid-batch:
RabbitMQ puts the messages it held back on their queue the moment its connection drops,
and a new worker finishes exactly once. Last, a batch through quorum queues
(``OUTBOX_QUEUE_TYPE=quorum``), published by the ``outbox`` command with that setting.

Skipped only when nothing listens on the AMQP port (``.ci/run`` starts Redis, not
RabbitMQ). ``guest`` usually has only the ``/`` vhost, so the tests purge (or delete)
the outbox queues there before and after.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, pools

from outbox import Handle, send_email, send_sms
from outbox.core.states import State
from outbox.worker import celeryconfig
from outbox.worker.celery_app import app
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, sandbox_recipients, wait_all_done
from tests.integration.runs import a_worker_killed_mid_batch
from tests.integration.test_cli import outbox

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("OUTBOX_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 1):
            return True
    except OSError:
        return False


def _queue_depths() -> dict[str, int]:
    """Ready messages in each outbox queue (declaring the queues if they are missing)."""
    depths = {}
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.default_channel
        for queue in celeryconfig.task_queues:
            bound = queue(channel)
            bound.declare()
            _name, count, _consumers = bound.queue_declare(passive=True)
            depths[queue.name] = count
    return depths


def _purge() -> None:
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.default_channel
        for queue in celeryconfig.task_queues:
            bound = queue(channel)
            bound.declare()
            bound.purge()


def _reset_producer_pools() -> None:
    """Drop the app's connection and producer pools so the next publish reads broker_url.

    The app's pools live in kombu's registries (``kombu.pools``), keyed by broker URL:
    closing them without emptying those would hand the next test a closed pool."""
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def amqp_broker(
    redis_db: tuple[str, str], producer: Runtime, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """This process publishes to RabbitMQ for the test; the Redis broker comes back after.

    Set up after the Redis fixtures (which read the broker URL from the environment),
    torn down before them.

    Celery reads ``CELERY_BROKER_URL`` from the environment ahead of ``broker_url`` in
    its config (``app.conf.broker_url`` is a property that checks the environment
    first), so both are switched, and the cached connection and producer pools dropped.
    """
    if not _listening(AMQP_URL):
        pytest.skip(f"RabbitMQ is not listening at {urlsplit(AMQP_URL).netloc.split('@')[-1]}")
    _purge()
    old_url = app.conf.broker_url
    _reset_producer_pools()
    monkeypatch.setenv("CELERY_BROKER_URL", AMQP_URL)
    app.conf.broker_url = AMQP_URL
    try:
        with app.connection_for_write() as conn:
            assert conn.transport_cls in {"amqp", "pyamqp"}, conn.as_uri()
        yield AMQP_URL
    finally:
        _reset_producer_pools()
        monkeypatch.undo()
        app.conf.broker_url = old_url
        _purge()


@pytest.mark.timeout(180)
def test_end_to_end_over_rabbitmq_exactly_once(
    amqp_broker: str, fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    worker = fleet.start(concurrency=20, CELERY_BROKER_URL=amqp_broker)
    log = worker.log.read_text(errors="replace")
    assert "amqp://" in log, "the worker is not on RabbitMQ"

    handles = []
    expected: list[str] = []

    newsletter = [f"bulk{i}@example.com" for i in range(1200)]  # 12 chunks: the bulk queue
    handles.append(send_email("news@example.com", newsletter, "Issue", html_body="<p>x</p>"))
    expected += newsletter

    big = [f"team{i}@example.com" for i in range(150)]  # 2 chunks: the email queue
    handles.append(send_email("hr@example.com", big, "All hands", text_body="at 10"))
    expected += big

    for i in range(20):
        to = [f"single{i}@example.com"]
        handles.append(send_email("shop@example.com", to, f"Order {i}", text_body="thanks"))
        expected += to

    # A delayed send waits parked in Redis and is published when due (no broker countdown).
    later = ["later@example.com"]
    handles.append(
        send_email("shop@example.com", later, "Later", text_body="x", send_at=time.time() + 2)
    )
    expected += later

    numbers = [f"+614000{i:05d}" for i in range(5)]
    handles.append(send_sms(numbers, "Your code is 1234"))
    expected += numbers

    assert handles[0].chunks == 12
    assert handles[1].chunks == 2

    records = wait_all_done(handles, timeout=120)
    for record in records:
        assert record.state is State.SENT, record
    delivered = collections.Counter(sandbox_recipients(sandbox)())
    assert sorted(delivered) == sorted(expected)
    duplicates = [address for address, n in delivered.items() if n > 1]
    assert not duplicates, duplicates[:5]

    # Every message was acknowledged: after a warm shutdown nothing is left on the queues.
    worker.stop()
    assert worker.proc.returncode == 0, worker.log.read_text(errors="replace")[-3000:]
    assert _queue_depths() == {"email": 0, "sms": 0, "bulk": 0}


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_batch_on_rabbitmq_is_redelivered_exactly_once(
    amqp_broker: str, fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """RabbitMQ holds the acknowledgements: the messages a SIGKILLed worker had taken are
    ready on their queue again the moment its connection drops (no visibility timeout),
    and a new worker settles each interrupted attempt once."""

    def handed_back() -> None:
        # With no worker left, every chunk not final has its message ready again.
        unfinished = len(producer.store.batches.active_before(float("inf")))
        assert unfinished >= 5
        wait_until(
            lambda: _queue_depths()["email"] >= unfinished,
            timeout=10,
            what=f"the {unfinished} unfinished chunks' messages back on the queue",
        )

    a_worker_killed_mid_batch(
        fleet,
        producer,
        sandbox,
        after_kill=handed_back,
        CELERY_BROKER_URL=amqp_broker,
    )
    fleet.stop_all()
    assert _queue_depths() == {"email": 0, "sms": 0, "bulk": 0}


def _forget_outbox_entities() -> None:
    """Delete outbox's queues and exchange, and the delayed-delivery ones Celery declares
    for quorum queues: a queue or exchange keeps its type, so the classic tests and the
    quorum one each need to declare their own."""
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.default_channel
        for queue in celeryconfig.task_queues:
            channel.queue_delete(queue.name)
        channel.exchange_delete("outbox")
        for level in range(28):
            channel.queue_delete(f"celery_delayed_{level}")
            channel.exchange_delete(f"celery_delayed_{level}")
        channel.exchange_delete("celery_delayed_delivery")


@pytest.fixture
def quorum(amqp_broker: str) -> Iterator[dict[str, str]]:
    """The environment of workers and commands on quorum queues, on a vhost cleared of
    outbox's classic queues (and cleared again after)."""
    _forget_outbox_entities()
    try:
        yield {"CELERY_BROKER_URL": amqp_broker, "OUTBOX_QUEUE_TYPE": "quorum"}
    finally:
        _forget_outbox_entities()


@pytest.mark.timeout(120)
def test_a_batch_through_quorum_queues(
    quorum: dict[str, str], fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    worker = fleet.start(concurrency=20, **quorum)
    # Celery found the quorum queues: per-consumer prefetch, as quorum queues require.
    assert "Global QoS is disabled" in worker.log.read_text(errors="replace")
    recipients = [f"q{i}@example.com" for i in range(250)]
    to = [arg for address in recipients for arg in ("--to", address)]
    sent = outbox("send", "email", "--from", "shop@example.com", *to, "--subject", "Hi",
                  "--text", "x", "--json", OUTBOX_REDIS_URL=producer.settings.redis_url,
                  **quorum)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    handle = json.loads(sent.stdout)
    assert handle["chunks"] == 3
    [record] = wait_all_done([Handle(handle["id"], "email", 3, 250)], timeout=60)
    assert record.state is State.SENT
    assert collections.Counter(sandbox_recipients(sandbox)()) == collections.Counter(recipients)
    # The queues are quorum queues: declaring one as classic is refused.
    with Connection(AMQP_URL, connect_timeout=5) as conn, pytest.raises(PreconditionFailed):
        conn.default_channel.queue_declare("email", durable=True,
                                           arguments={"x-queue-type": "classic"})  # fmt: skip
