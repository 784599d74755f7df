"""The library work-arounds in ``worker.compat``, each against the defect it answers.

Every test first shows the defect is still there in the installed library (so a
release that fixes it makes the test fail and the work-around can be dropped), then
shows the patched behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from outbox.worker import compat

pytestmark = pytest.mark.integration

QUEUE = Queue("compat-test", Exchange("compat-test", type="direct"), routing_key="compat-test")


@pytest.fixture
def delivered(redis_db: tuple[str, str]) -> Iterator[tuple[Connection, Any, str]]:
    """A connection holding one delivered, unacknowledged message."""
    broker, _ = redis_db
    conn = Connection(broker)
    conn.Producer(serializer="json").publish(
        {"n": 1}, exchange=QUEUE.exchange, routing_key="compat-test", declare=[QUEUE]
    )
    message = conn.SimpleQueue(QUEUE, no_ack=False).get(timeout=5)
    assert message.payload == {"n": 1}
    yield conn, message, broker
    conn._default_channel = None


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", compat._original_connparams)


def _redelivered(broker: str) -> Any:
    """What any worker's periodic ``restore_visible`` does once the timeout has passed."""
    with Connection(broker, transport_options={"visibility_timeout": 0}) as fresh:
        fresh.default_channel.qos.restore_visible(start=0)
        return fresh.SimpleQueue(QUEUE, no_ack=True).get(timeout=5).payload


@pytest.mark.usefixtures("unpatched")
def test_kombu_still_crashes_closing_a_detached_channel(
    delivered: tuple[Connection, Any, str],
) -> None:
    conn, _, _ = delivered
    conn._do_close_transport()  # what collect() leaves when Redis is down
    with pytest.raises(AttributeError, match="hostname"):
        conn.close()


@pytest.mark.usefixtures("unpatched")
def test_kombu_still_crashes_acking_after_a_lost_connection(
    delivered: tuple[Connection, Any, str],
) -> None:
    conn, message, _ = delivered
    errors = conn.connection_errors
    conn._do_close_transport()
    with pytest.raises(AttributeError):
        conn.close()  # leaves the channel with neither a pool nor a client to build one
    with pytest.raises(AttributeError, match="hostname"):
        message.ack_log_error(logging.getLogger(__name__), errors)


def test_closing_a_detached_channel_keeps_the_delivery_for_redelivery(
    delivered: tuple[Connection, Any, str],
) -> None:
    conn, _, broker = delivered
    compat.install()
    conn._do_close_transport()
    conn.close()  # no AttributeError: the worker survives the lost connection
    assert redis.Redis.from_url(broker).hlen("unacked") == 1
    assert _redelivered(broker) == {"n": 1}


def test_acking_on_a_closed_channel_is_a_logged_connection_error(
    delivered: tuple[Connection, Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    conn, message, broker = delivered
    compat.install()
    errors = conn.connection_errors
    conn._do_close_transport()
    conn.close()
    message.ack_log_error(logging.getLogger("ack"), errors)  # what Celery's Request does
    assert "Couldn't ack" in caplog.text
    assert "connection was lost" in caplog.text
    assert _redelivered(broker) == {"n": 1}
