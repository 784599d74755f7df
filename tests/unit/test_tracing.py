"""One trace per send: the app's span, outbox's enqueue, each chunk's run and its
SMTP2GO request, carried through what outbox publishes itself (here a retry the relay
publishes from a thread with no context of its own). Spans go to the SDK's in-memory
exporter; with no tracer provider set nothing is recorded or stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from outbox import send_email
from outbox.core import tracing
from outbox.core.states import Kind
from outbox.worker.delivery import Delivery
from outbox.worker.publish import chunk_task, publish
from outbox.worker.runtime import Runtime


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider of the test's own, as an app sets one; unset afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def _messages(app: Any) -> list[dict[str, Any]]:
    out = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue("email")
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                break
            out.append({"headers": message.headers, "args": message.payload[0]})
            message.ack()
        simple.close()
    return out


def _trace_of(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)


def test_one_trace_from_the_apps_span_through_a_retry(
    runtime: Runtime, memory_broker: Any, spans: InMemorySpanExporter
) -> None:
    from outbox.worker.celery_app import app

    tracer = trace.get_tracer("the app")
    with tracer.start_as_current_span("POST /signup") as root:
        handle = send_email("s@example.com", ["ann@example.org"], "Hi", text_body="x")
    want = root.get_span_context().trace_id
    stored = runtime.store.batches.batch(handle.id)
    assert _trace_of(stored["traceparent"]) == want  # the record carries the context
    (message,) = _messages(app)
    assert _trace_of(message["headers"]["traceparent"]) == want
    # The worker runs the chunk (the API is unreachable here: a retryable network error).
    chunk_id = f"{handle.id}.0"
    assert Delivery(runtime, Kind.EMAIL, chunk_id, "w1").run(message["args"][1]) == "retrying"
    # The relay publishes the retry with no context of its own: the record's is used.
    task = chunk_task(runtime.store.batches, chunk_id)
    assert task is not None
    assert trace.get_current_span().get_span_context().is_valid is False
    publish([task], store=runtime.store)
    (again,) = _messages(app)
    assert _trace_of(again["headers"]["traceparent"]) == want
    Delivery(runtime, Kind.EMAIL, chunk_id, "w1").run(again["args"][1])
    finished = spans.get_finished_spans()
    assert {s.context.trace_id for s in finished} == {want}
    names = [s.name for s in finished]
    assert names.count("outbox.enqueue") == 1
    assert names.count("outbox.send email") == 2
    assert names.count("SMTP2GO email/send") == 2
    runs = [s for s in finished if s.name == "outbox.send email"]
    assert [s.attributes["outbox.attempt"] for s in runs] == [1, 2]
    assert all(s.attributes["outbox.send_id"] == handle.id for s in runs)
    enqueue = next(s for s in finished if s.name == "outbox.enqueue")
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == root.get_span_context().span_id
    requests = [s for s in finished if s.name.startswith("SMTP2GO")]
    assert all(not s.status.is_ok for s in requests)


def test_nothing_is_stored_or_recorded_without_a_tracer_provider(
    runtime: Runtime, memory_broker: Any
) -> None:
    from outbox.worker.celery_app import app

    assert not tracing.active()
    handle = send_email("s@example.com", ["ann@example.org"], "Hi", text_body="x")
    assert "traceparent" not in runtime.store.batches.batch(handle.id)
    (message,) = _messages(app)
    assert "traceparent" not in message["headers"]


def test_a_webhook_event_recorded_later_links_to_its_sends_trace(
    runtime: Runtime, memory_broker: Any, spans: InMemorySpanExporter
) -> None:
    from outbox.core.states import State
    from outbox.worker.webhooks.tasks import Outcome, record

    with trace.get_tracer("the app").start_as_current_span("POST /signup") as root:
        handle = send_email("s@example.com", ["ann@example.org"], "Hi", text_body="x")
    chunk_id = f"{handle.id}.0"
    runtime.store.batches.finish(chunk_id, State.SENT, limit=runtime.send_limit, email_id="E-1")
    spans.clear()
    event = {"event": "delivered", "email_id": "E-1", "rcpt": "ann@example.org"}
    assert record(runtime, event) is Outcome.RECORDED
    (span,) = spans.get_finished_spans()
    assert span.name == "outbox.event delivered"
    assert span.context.trace_id != root.get_span_context().trace_id  # a trace of its own
    assert [link.context.trace_id for link in span.links] == [root.get_span_context().trace_id]
