"""One trace per send, with a real worker run as OpenTelemetry's docs run Celery:
``opentelemetry-instrument celery -A outbox.worker worker`` configured by ``OTEL_*``
variables, exporting OTLP over HTTP to a collector (here a small one in this process
that decodes what it receives). The app (this test) has its own tracer provider."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.util._once import Once

from outbox import send_email
from outbox.worker.runtime import Runtime
from support.procs import PYTHON, wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Collector:
    """An OTLP/HTTP trace receiver: every span it was sent, with its service's name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.add(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        for resource in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource.resource.attributes
                 if a.key == "service.name"), "",
            )  # fmt: skip
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    with self.lock:
                        self.spans.append({
                            "service": service,
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "attributes": attributes,
                            "error": span.status.code == 2,
                        })  # fmt: skip

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["trace"] == trace_id]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    yield found
    found.server.shutdown()


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
