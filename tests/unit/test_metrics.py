"""The worker's metrics: what each outcome of an attempt counts (a Delivery on fakeredis
with an API answering through ``httpx.MockTransport``), the label sets, the scrape-time
gauges of the fleet, the webhook receiver's ``/metrics``, and how a worker starts
serving them or refuses to."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import fakeredis
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from outbox.core.errors import (
    BadRequestError,
    ConfigurationError,
    ForbiddenError,
    RateLimitedError,
    RequestTimeout,
    ServerError,
    SMTP2GOError,
    TransportError,
    UnauthorizedError,
    UnexpectedStatusError,
)
from outbox.core.states import FINAL_STATES, Kind
from outbox.core.store import Store, keys
from outbox.worker.delivery import Delivery
from outbox.worker.metrics import OTHER_EVENT, event_label, serve
from outbox.worker.metrics.fleet import QUEUES, FleetCollector, RedisDepth
from outbox.worker.metrics.instruments import Instruments
from outbox.worker.policy import Reason, reason_of
from outbox.worker.runtime import set_runtime
from outbox.worker.webhooks.app import create_app
from outbox.worker.webhooks.tasks import record_event
from support.procs import PYTHON, ROOT
from tests.unit.test_delivery import Api, _run, _runtime, _send
from tests.unit.worker_run import run_task

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Counted:
    """A runtime on fakeredis whose metrics count into a registry of the test's own."""

    def __init__(self, api: Api, **env: str) -> None:
        self.rt = _runtime(api, **env)
        self.registry = CollectorRegistry()
        self.rt.metrics = Instruments(self.registry)

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def counted(api: Api) -> Iterator[Counted]:
    c = Counted(api)
    set_runtime(c.rt)
    yield c
    set_runtime(None)


def _answers(status: int, **data: Any) -> Any:
    return lambda request: httpx.Response(status, json={"request_id": "r", "data": data})


# -- why a retry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RateLimitedError("slow", status_code=429), Reason.RATE_LIMITED),
        (ServerError("busy", status_code=503), Reason.SERVER_ERROR),
        (TransportError("refused", ambiguous=False), Reason.NETWORK),
        (RequestTimeout("pool timeout", ambiguous=False), Reason.NETWORK),
        (TransportError("reset after sending", ambiguous=True), Reason.AMBIGUOUS),
        (RequestTimeout("read timeout", ambiguous=True), Reason.AMBIGUOUS),
        (UnauthorizedError("bad key", status_code=401), Reason.HELD),
        (ForbiddenError("denied", status_code=403), Reason.HELD),
        (UnexpectedStatusError("teapot", status_code=418), Reason.OTHER),
        (BadRequestError("bad", status_code=400), Reason.OTHER),
    ],
)
def test_reason_of(error: SMTP2GOError, reason: Reason) -> None:
    assert reason_of(error) is reason


# -- label sets ------------------------------------------------------------------------


def test_every_known_series_is_there_from_the_start_at_zero() -> None:
    registry = CollectorRegistry()
    Instruments(registry)
    sends = {
        (s.labels["kind"], s.labels["outcome"])
        for family in registry.collect()
        for s in family.samples
        if s.name == "outbox_sends_total"
    }
    assert sends == {(k.value, s.value) for k in Kind for s in FINAL_STATES}
    for reason in Reason:
        assert registry.get_sample_value("outbox_retries_total", {"reason": reason.value}) == 0


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("delivered", "delivered"),
        ("bounce", "bounce"),
        ("opt-out", "opt-out"),
        ("x" * 60, OTHER_EVENT),
        (None, OTHER_EVENT),
        ("Delivered", OTHER_EVENT),
    ],
)
def test_event_labels_are_the_known_names_or_other(name: object, label: str) -> None:
    assert event_label(name) == label


# -- what an attempt counts --------------------------------------------------------------


def test_a_sent_email_counts_once_with_its_wait_and_its_request(counted: Counted) -> None:
    chunk_id, payload = _send(counted.rt)
    assert _run(counted.rt, chunk_id, payload) == "sent"
    assert _run(counted.rt, chunk_id, payload) == "sent"  # a redelivered copy: settled
    assert counted.value("outbox_sends_total", kind="email", outcome="sent") == 1
    assert counted.value("outbox_limiter_wait_seconds_count", lane="transactional", tenant="") == 1
    assert counted.value("outbox_api_request_seconds_count", endpoint="email/send") == 1
    assert counted.value("outbox_retries_total", reason="server_error") == 0


def test_a_5xx_counts_a_retry_and_no_send(counted: Counted, api: Api) -> None:
    api.handler = _answers(503, error="busy")
    chunk_id, payload = _send(counted.rt)
    assert _run(counted.rt, chunk_id, payload) == "retrying"
    assert counted.value("outbox_retries_total", reason="server_error") == 1
    assert counted.value("outbox_sends_total", kind="email", outcome="sent") == 0
    assert counted.value("outbox_api_request_seconds_count", endpoint="email/send") == 1


def test_a_429_counts_the_cool_down_it_added_and_overlaps_add_nothing(api: Api) -> None:
    c = Counted(api, OUTBOX_COOLDOWN_SECONDS="90")
    set_runtime(c.rt)
    try:
        api.handler = _answers(429, error="slow down")
        chunk_id, payload = _send(c.rt)
        assert _run(c.rt, chunk_id, payload) == "retrying"
        assert c.value("outbox_rate_limited_total") == 1
        assert c.value("outbox_retries_total", reason="rate_limited") == 1
        assert 89.9 < c.value("outbox_cooldown_seconds_total") <= 90
        limits = c.rt.store.limits
        assert limits.cool_down(c.rt.send_limit, 30) == 0  # inside the 90 s already on
        assert 29 < limits.cool_down(c.rt.send_limit, 120) <= 30.1  # 30 s past its end
    finally:
        set_runtime(None)


def test_a_refused_key_counts_a_held_retry(counted: Counted, api: Api) -> None:
    api.handler = _answers(401, error="API key is invalid")
    chunk_id, payload = _send(counted.rt)
    assert _run(counted.rt, chunk_id, payload) == "retrying"
    assert counted.value("outbox_retries_total", reason="held") == 1


def test_refused_and_exhausted_chunks_count_failed_and_dead(api: Api) -> None:
    c = Counted(api, OUTBOX_MAX_ATTEMPTS="1")
    set_runtime(c.rt)
    try:
        api.handler = _answers(200, succeeded=0, failed=1, failures=["nope"], email_id="")
        chunk_id, payload = _send(c.rt)
        assert _run(c.rt, chunk_id, payload) == "failed"
        api.handler = _answers(503, error="busy")
        chunk_id, payload = _send(c.rt)
        assert _run(c.rt, chunk_id, payload) == "dead"
        # a payload that does not validate, of a chunk without a record: a dead letter
        orphan = f"{'0' * 32}.0"
        assert Delivery(c.rt, Kind.SMS, orphan, "w1").run({"to": 5}) == "dead"
        assert c.value("outbox_sends_total", kind="email", outcome="failed") == 1
        assert c.value("outbox_sends_total", kind="email", outcome="dead") == 1
        assert c.value("outbox_sends_total", kind="sms", outcome="dead") == 1
        assert c.value("outbox_retries_total", reason="server_error") == 0
    finally:
        set_runtime(None)


def test_record_event_counts_what_it_did_by_event(counted: Counted) -> None:
    event = {"event": "delivered", "email_id": "nobody", "channel": "email", "rcpt": "a@b.c"}
    assert run_task(record_event, event, 99) == "unmatched"
    assert run_task(record_event, {**event, "event": "made-up"}, 99) == "unmatched"
    assert run_task(record_event, event, 0) == "not_yet"  # looked at again later: not yet
    assert (
        counted.value(
            "outbox_webhook_events_recorded_total", event="delivered", outcome="unmatched"
        )
        == 1
    )
    assert (
        counted.value(
            "outbox_webhook_events_recorded_total", event=OTHER_EVENT, outcome="unmatched"
        )
        == 1
    )


# -- the fleet's gauges, read at scrape time --------------------------------------------------


def _gauges(collector: FleetCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def test_the_fleet_collector_reads_letters_hold_cool_down_quota_and_queues(api: Api) -> None:
    rt = _runtime(api)
    broker = fakeredis.FakeRedis()
    for _ in range(3):
        broker.lpush("email", b"{}")
    broker.lpush("email\x06\x169", b"{}")  # a message of priority 9 waits on its own list
    broker.lpush("sms", b"{}")
    depths = RedisDepth(broker, QUEUES, {})
    collector = FleetCollector(rt.store, depths)
    assert collector.describe() == []  # registering it reads nothing

    quiet = _gauges(collector)
    assert quiet[("outbox_store_up", ())] == 1
    assert quiet[("outbox_sending_held", ())] == 0
    assert quiet[("outbox_dead_letters", ())] == 0
    assert not any(name.startswith("outbox_quota") for name, _ in quiet)

    rt.redis.zadd(keys.dead_letters(), {"b.0": 1, "b.1": 2})
    rt.store.limits.hold(rt.send_limit, json.dumps({"reason": "401 bad key"}))
    rt.store.limits.cool_down(rt.send_limit, 45)
    rt.store.account.save_quota(
        {"cycle_used": 900, "cycle_max": 1000, "cycle_remaining": 100, "read_at": 1.5e9}
    )
    seen = _gauges(collector)
    assert seen[("outbox_dead_letters", ())] == 2
    assert seen[("outbox_sending_held", ())] == 1
    assert 44 < seen[("outbox_cooldown_remaining_seconds", ())] <= 45
    assert seen[("outbox_quota_remaining", ())] == 100
    assert seen[("outbox_quota_max", ())] == 1000
    assert seen[("outbox_quota_used", ())] == 900
    assert seen[("outbox_broker_up", ())] == 1
    assert seen[("outbox_queue_depth", (("queue", "email"),))] == 4
    assert seen[("outbox_queue_depth", (("queue", "sms"),))] == 1
    assert seen[("outbox_queue_depth", (("queue", "bulk"),))] == 0


def test_a_redis_depth_honours_the_transports_key_prefix_and_priority_steps() -> None:
    broker = fakeredis.FakeRedis()
    broker.lpush("app:email", b"{}")
    broker.lpush("app:email\x06\x165", b"{}")
    broker.lpush("email", b"{}")  # someone else's list without the prefix
    depths = RedisDepth(broker, ["email"], {"global_keyprefix": "app:", "priority_steps": [0, 5]})
    assert depths() == {"email": 2}


def test_an_unreachable_store_or_broker_is_reported_not_raised() -> None:
    server = fakeredis.FakeServer()
    store = Store.connect(fakeredis.FakeRedis(server=server), retention=60)
    server.connected = False  # every command fails as on a lost connection

    def down() -> dict[str, int]:
        raise ConnectionError("broker gone")

    seen = _gauges(FleetCollector(store, down))
    assert seen == {("outbox_store_up", ()): 0, ("outbox_broker_up", ()): 0}


# -- the webhook receiver's /metrics ---------------------------------------------------------


SECRET = "s3cret-for-tests"


def test_the_receiver_counts_events_by_type_and_posts_by_answer() -> None:
    published: list[dict[str, Any]] = []
    client = TestClient(create_app(secret=SECRET, enqueue=published.append))
    bearer = {"Authorization": f"Bearer {SECRET}"}
    events = [
        {"event": "delivered", "email_id": "E1", "rcpt": "a@example.org"},
        {"event": "bounce", "email_id": "E2", "rcpt": "b@example.org", "bounce": "hard"},
        {"event": "something-new", "email_id": "E3", "rcpt": "c@example.org"},
    ]
    assert client.post("/webhooks/smtp2go", json=events, headers=bearer).status_code == 200
    assert client.post("/webhooks/smtp2go", json=events[0]).status_code == 401
    assert client.post("/webhooks/smtp2go", content=b"[1]", headers=bearer).status_code == 400
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples == {
        ("outbox_webhook_events_total", (("event", "delivered"),)): 1,
        ("outbox_webhook_events_total", (("event", "bounce"),)): 1,
        ("outbox_webhook_events_total", (("event", OTHER_EVENT),)): 1,
        ("outbox_webhook_requests_total", (("code", "200"),)): 1,
        ("outbox_webhook_requests_total", (("code", "401"),)): 1,
        ("outbox_webhook_requests_total", (("code", "400"),)): 1,
    }
    assert len(published) == 3


def test_the_receiver_serves_no_metrics_when_told_not_to_or_without_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = TestClient(create_app(secret=SECRET, enqueue=lambda e: None, metrics=False))
    assert off.get("/metrics").status_code == 404
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "outbox.worker.metrics.receiver", raising=False)
    missing = TestClient(create_app(secret=SECRET, enqueue=lambda e: None))
    assert missing.get("/metrics").status_code == 404
    assert missing.get("/healthz").status_code == 200
    with pytest.raises(ValueError, match=r"outbox\[metrics\]"):
        create_app(secret=SECRET, enqueue=lambda e: None, metrics=True)


# -- a worker starting to serve them -----------------------------------------------------------


def test_a_thread_pool_worker_serves_its_counts_and_the_fleets(api: Api) -> None:
    rt = _runtime(api, OUTBOX_METRICS_PORT="0")
    from outbox.worker.celery_app import app

    rt.metrics = serve.start(rt, prefork=False, app=app)
    try:
        url = serve.url()
        assert url is not None
        set_runtime(rt)
        chunk_id, payload = _send(rt)
        assert _run(rt, chunk_id, payload) == "sent"
        text = httpx.get(url, timeout=5).text
    finally:
        set_runtime(None)
        serve.stop()
    assert 'outbox_sends_total{kind="email",outcome="sent"} 1.0' in text
    assert "outbox_store_up 1.0" in text
    assert serve.url() is None


def test_a_taken_port_stops_the_worker_saying_which(api: Api) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rt = _runtime(api, OUTBOX_METRICS_PORT=str(port))
        from outbox.worker.celery_app import app

        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
            serve.start(rt, prefork=False, app=app)
    assert serve.url() is None


def test_the_port_without_the_extra_stops_the_worker_saying_what_to_install(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outbox.worker.startup import WorkerConfigError, serve_metrics

    set_runtime(_runtime(api, OUTBOX_METRICS_PORT="9"))
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    try:
        with pytest.raises(WorkerConfigError, match=r"pip install 'smtp2go-outbox\[metrics\]'"):
            serve_metrics(prefork=False)
    finally:
        set_runtime(None)


@pytest.mark.timeout(60)
def test_without_the_port_the_worker_modules_never_load_prometheus_client() -> None:
    code = (
        "import sys\n"
        "from outbox.worker.celery_app import app\n"
        "app.loader.import_default_modules()\n"
        "from outbox.worker.startup import serve_metrics\n"
        "serve_metrics(prefork=True)\n"
        "assert 'prometheus_client' not in sys.modules, 'loaded'\n"
        "assert 'PROMETHEUS_MULTIPROC_DIR' not in __import__('os').environ\n"
    )
    env = {"PATH": "/usr/bin:/bin", "SMTP2GO_API_KEY": "api-" + "0" * 32}
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
