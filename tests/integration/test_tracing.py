"""One trace per send, with a real worker run as OpenTelemetry's docs run Celery:
``opentelemetry-instrument celery -A outbox.worker worker`` configured by ``OTEL_*``
variables, exporting OTLP over HTTP to a collector (here a small one in this process
that decodes what it receives). The app (this test) has its own tracer provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util._once import Once

from outbox import send_email
from outbox.worker.runtime import Runtime
from support.otlp import Collector
from support.procs import PYTHON, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.close()


@pytest.fixture
def app_tracer(collector: Collector) -> Iterator[trace.Tracer]:
    """The app's own tracer provider, exporting to the collector as the worker does."""
    provider = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
    exporter = OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    try:
        yield provider.get_tracer("the app")
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def test_one_trace_from_the_apps_span_through_a_503_and_its_retry(
    fleet: Fleet,
    producer: Runtime,
    sandbox: Sandbox,
    collector: Collector,
    app_tracer: trace.Tracer,
) -> None:
    instrument = str(Path(PYTHON).with_name("opentelemetry-instrument"))
    fleet.start(
        concurrency=4,
        launcher=(instrument,),
        OTEL_SERVICE_NAME="outbox-worker",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    sandbox.configure(fail_next=1, fail_status=503, fail_endpoints=["email/send"])
    with app_tracer.start_as_current_span("POST /signup") as root:
        handle = send_email("Shop <shop@example.com>", ["ann@example.org"], "Hi", text_body="x")
    trace_id = f"{root.get_span_context().trace_id:032x}"
    (record,) = wait_all_done([handle], timeout=60)
    assert record.chunks[0].attempts == 2

    def requests() -> list[dict[str, Any]]:
        return [s for s in collector.of_trace(trace_id) if s["name"].startswith("SMTP2GO ")]

    wait_until(lambda: len(requests()) >= 2, timeout=30, what="both requests' spans")
    spans = collector.of_trace(trace_id)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (enqueue,) = by_name["outbox.enqueue"]
    assert enqueue["service"] == "the-app"
    assert enqueue["parent"] == f"{root.get_span_context().span_id:016x}"
    runs = sorted(by_name["outbox.send email"], key=lambda s: s["attributes"]["outbox.attempt"])
    assert [s["attributes"]["outbox.attempt"] for s in runs] == [1, 2]
    assert {s["service"] for s in runs} == {"outbox-worker"}
    assert [s["attributes"]["outbox.state"] for s in runs] == ["retrying", "sent"]
    assert all(s["attributes"]["outbox.send_id"] == handle.id for s in runs)
    calls = sorted(requests(), key=lambda s: s["attributes"]["outbox.attempt"])
    assert [s["attributes"].get("http.response.status_code") for s in calls] == [503, 200]
    assert [s["error"] for s in calls] == [True, False]
    # Celery's own instrumentation joined the same trace (its task spans carry ours).
    assert any(s["name"].startswith("run/outbox.send_email") for s in spans)
    # httpx's instrumentation saw the request to the sandbox inside it
    # the retry was published by the worker's relay, in the send's trace
    (enqueue_id,) = {s["id"] for s in by_name["outbox.enqueue"]}
    relayed = [s for s in spans if s["name"].startswith("apply_async/outbox.send_email")]
    assert [s["parent"] for s in relayed] == [enqueue_id]
