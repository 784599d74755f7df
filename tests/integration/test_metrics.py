"""Prometheus metrics from real workers: a batch with injected faults goes through a
``celery worker`` (a thread pool, then a prefork pool of two children whose counts the
parent adds up) and the numbers read back from ``OUTBOX_METRICS_PORT`` must equal what
the records and the sandbox say happened."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis
from kombu import Connection
from kombu import Queue as KombuQueue
from prometheus_client.parser import text_string_to_metric_families

from outbox import send_email, send_sms
from outbox.core.states import State
from outbox.worker.metrics.fleet import AmqpDepth
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, free_port, running, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.test_rabbitmq import AMQP_URL, _listening

pytestmark = pytest.mark.integration

Samples = list[tuple[str, dict[str, str], float]]


def scrape(port: int) -> Samples:
    return scrape_url(f"http://127.0.0.1:{port}/metrics")


def scrape_url(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and labels.items() <= have.items()
    )


def _retries_in_records(records: list[object]) -> Counter[str]:
    """Retries as the records' histories tell them, by the error that caused each."""
    seen: Counter[str] = Counter()
    for record in records:
        for chunk in record.chunks:  # type: ignore[attr-defined]
            for entry in chunk.history:
                if entry.get("state") == State.RETRYING.value:
                    seen[entry["error"]["type"]] += 1
    return seen


@pytest.mark.timeout(240)
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_the_scrape_counts_what_the_records_and_the_sandbox_say(
    pool: str, fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    port = free_port()
    if pool == "prefork":
        # ``-P prefork`` names Celery's default pool, so Celery takes the configured
        # ``worker_pool`` (threads) instead; ``processes`` is the same pool by its alias.
        # Children are replaced every few tasks: what the gone ones counted must stay.
        args = ("-P", "processes", "--max-tasks-per-child", "3")
        worker = fleet.start(concurrency=2, args=args, OUTBOX_METRICS_PORT=str(port))
        assert "concurrency: 2 (prefork)" in worker.log.read_text()
    else:
        fleet.start(concurrency=8, OUTBOX_METRICS_PORT=str(port))
    before = scrape(port)
    assert total(before, "outbox_sends_total", kind="email", outcome="sent") == 0
    assert total(before, "outbox_queue_depth", queue="bulk") == 0

    # Three 503s and one email the API refuses, then two 429s.
    sandbox.configure(fail_next=3, fail_status=503, soft_fail_next=1, fail_endpoints=["email/send"])
    handles = [
        send_email("shop@example.com", [f"a{i}@example.org"], f"Order {i}", text_body="x")
        for i in range(6)
    ]
    records = wait_all_done(handles, timeout=120)
    sandbox.configure(fail_next=2, fail_status=429, fail_endpoints=["email/send"])
    more = [
        send_email("shop@example.com", [f"b{i}@example.org"], f"Order {i}", text_body="x")
        for i in range(4)
    ]
    more.append(send_sms(["+61400000001"], "your code is 1234"))
    records += wait_all_done(more, timeout=120)

    states = Counter((r.kind, r.state.value) for r in records)
    assert states == {("email", "sent"): 9, ("email", "failed"): 1, ("sms", "sent"): 1}
    # A chunk's counter moves just after its record: wait for the last ones.
    wait_until(
        lambda: total(scrape(port), "outbox_sends_total") == len(records),
        timeout=20,
        what="every final chunk counted",
    )
    samples = scrape(port)
    for (kind, state), count in states.items():
        assert total(samples, "outbox_sends_total", kind=kind, outcome=state) == count
    assert total(samples, "outbox_sends_total", outcome="dead") == 0

    retried = _retries_in_records(records)
    assert retried == {"ServerError": 3, "RateLimitedError": 2}
    assert total(samples, "outbox_retries_total", reason="server_error") == 3
    assert total(samples, "outbox_retries_total", reason="rate_limited") == 2
    assert total(samples, "outbox_retries_total") == 5
    assert total(samples, "outbox_rate_limited_total") == 2
    # Two 429s, each asking the fleet to hold off 1 s (OUTBOX_COOLDOWN_SECONDS): one
    # second at least, two at most when they did not overlap.
    assert 0.99 <= total(samples, "outbox_cooldown_seconds_total") <= 2.01

    requests = sandbox.stats()["requests"]
    assert requests == len(records) + 5
    assert total(samples, "outbox_api_request_seconds_count") == requests
    assert total(samples, "outbox_api_request_seconds_count", endpoint="sms/send") == 1
    assert total(samples, "outbox_limiter_wait_seconds_count") == requests

    for queue in ("email", "sms", "bulk"):
        assert total(samples, "outbox_queue_depth", queue=queue) == 0
    assert total(samples, "outbox_store_up") == 1
    assert total(samples, "outbox_broker_up") == 1
    assert total(samples, "outbox_dead_letters") == 0
    assert total(samples, "outbox_failed_letters") == 1
    assert total(samples, "outbox_sending_held") == 0


@pytest.mark.timeout(90)
def test_queue_depth_is_read_from_the_broker_at_scrape_time(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    """A worker that consumes only ``sms`` reports the emails waiting on ``email``."""
    port = free_port()
    fleet.start(concurrency=2, queues="sms", OUTBOX_METRICS_PORT=str(port))
    for i in range(3):
        send_email("shop@example.com", [f"q{i}@example.org"], "Waiting", text_body="x")
    samples = scrape(port)
    assert total(samples, "outbox_queue_depth", queue="email") == 3
    assert total(samples, "outbox_queue_depth", queue="sms") == 0


@pytest.mark.timeout(60)
def test_queue_depth_on_rabbitmq_is_a_passive_declare() -> None:
    """Messages ready on a declared queue; 0 for one never declared (the broker closes
    the channel on it, and the next queue is asked on a new one)."""
    if not _listening(AMQP_URL):
        pytest.skip(f"no RabbitMQ at {AMQP_URL}")
    name = f"outbox-metrics-test-{uuid.uuid4().hex[:8]}"
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        queue = KombuQueue(name, routing_key=name, auto_delete=False)(conn.default_channel)
        queue.declare()
        producer = conn.Producer()
        for i in range(2):
            producer.publish({"n": i}, routing_key=name, declare=[queue])
        try:
            depth = AmqpDepth(lambda: Connection(AMQP_URL, connect_timeout=5), ["nowhere", name])
            wait_until(lambda: depth() == {"nowhere": 0, name: 2}, timeout=10, what="depths")
            assert depth() == {"nowhere": 0, name: 2}  # again, on the kept connection
        finally:
            queue.delete()


@pytest.mark.timeout(60)
def test_the_receiver_process_counts_events_and_answers_on_its_metrics_page(
    redis_db: tuple[str, str], tmp_path: Path
) -> None:
    """``python -m outbox.worker.webhooks``: events posted as JSON and as a form, and a
    post with the wrong secret, read back from its ``/metrics``."""
    port = free_port()
    secret = "metrics-webhook-secret-0123"
    args = [PYTHON, "-m", "outbox.worker.webhooks", "--host", "127.0.0.1", "--port", str(port)]
    broker, records = redis_db
    env = {
        "CELERY_BROKER_URL": broker,
        "OUTBOX_REDIS_URL": records,
        "OUTBOX_WEBHOOK_SECRET": secret,
    }
    base = f"http://127.0.0.1:{port}"
    with running(args, ready_url=f"{base}/healthz", env=env, log=tmp_path / "webhooks.log"):
        bearer = {"Authorization": f"Bearer {secret}"}
        post = f"{base}/webhooks/smtp2go"
        events = [
            {"event": "delivered", "email_id": "E1", "rcpt": "a@example.org"},
            {"event": "open", "email_id": "E1", "rcpt": "a@example.org"},
        ]
        assert httpx.post(post, json=events, headers=bearer, timeout=5).status_code == 200
        form = {"event": "bounce", "email_id": "E2", "rcpt": "b@example.org", "bounce": "hard"}
        assert httpx.post(post, data=form, headers=bearer, timeout=5).status_code == 200
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(post, json=events, headers=wrong, timeout=5).status_code == 401
        samples = scrape_url(f"{base}/metrics")
    for event in ("delivered", "open", "bounce"):
        assert total(samples, "outbox_webhook_events_total", event=event) == 1
    assert total(samples, "outbox_webhook_events_total") == 3
    assert total(samples, "outbox_webhook_requests_total", code="200") == 2
    assert total(samples, "outbox_webhook_requests_total", code="401") == 1
    # published to the broker: three outbox.record_event messages wait on ``email``
    assert redis.Redis.from_url(broker).llen("email") == 3
