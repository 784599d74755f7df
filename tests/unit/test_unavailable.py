"""Tasks hand their message back to the broker when Redis cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery.exceptions import Reject
from redis.backoff import NoBackoff
from redis.retry import Retry

from outbox.core.settings import Settings
from outbox.worker import unavailable
from outbox.worker.runtime import Runtime, set_runtime
from outbox.worker.tasks import fan_out
from outbox.worker.webhooks.tasks import record_event
from support.procs import free_port
from tests.unit.worker_run import run_task


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime whose Redis refuses connections (nothing listens on its port)."""
    monkeypatch.setattr(unavailable, "UNAVAILABLE_PAUSE", 0.0)
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    settings = Settings(SMTP2GO_API_KEY="api-" + "0" * 32, SMTP2GO_BASE_URL="http://127.0.0.1:9/v3")
    rt = Runtime.from_settings(settings, redis_client=client)
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.mark.usefixtures("redis_down")
def test_webhook_event_goes_back_to_the_broker() -> None:
    event = {"event": "delivered", "email_id": "E1", "rcpt": "a@example.org"}
    with pytest.raises(Reject) as caught:
        run_task(record_event, event)
    assert caught.value.requeue is True
    assert isinstance(caught.value.reason, str)
    assert "unavailable" in caught.value.reason


@pytest.mark.usefixtures("redis_down")
def test_fan_out_goes_back_to_the_broker() -> None:
    with pytest.raises(Reject) as caught:
        fan_out.run("batch1")
    assert caught.value.requeue is True


@pytest.mark.parametrize(
    "outage",
    [
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.exceptions.SlotNotCoveredError("no node serves slot 15822"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.ConnectionError("The previous master is now a slave"),
    ],
)
def test_a_cluster_or_sentinel_in_failover_hands_the_task_back(
    outage: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unavailable, "UNAVAILABLE_PAUSE", 0.0)

    @unavailable.hand_back_when_unavailable(lambda: "job")
    def meets_a_failover() -> None:
        raise outage

    with pytest.raises(Reject) as caught:
        meets_a_failover()
    assert caught.value.requeue is True


def test_other_errors_are_not_handed_back() -> None:
    @unavailable.hand_back_when_unavailable(lambda: "job")
    def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        broken()

    @unavailable.hand_back_when_unavailable(lambda: "job")
    def cross_slot() -> None:
        raise redis.exceptions.RedisClusterException("keys must map to the same key slot")

    with pytest.raises(redis.exceptions.RedisClusterException):
        cross_slot()
