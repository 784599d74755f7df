"""One trace per send, with OpenTelemetry when the app or the worker has it configured.

outbox publishes and republishes its tasks itself (the fan-out of a large send, parked
retries, ``send_at``, the relay's bulk grants, resume, replay, the stuck sweep), so the
context Celery's instrumentation carries in a message's headers would stop at the first
of them. Instead the send's context is kept where every one of them can find it: the
producer writes its ``traceparent`` (and ``tracestate``) on the batch's record, each
publish attaches it and puts it in the message's headers, and each chunk's task starts
its span in that trace. Only the W3C trace context is stored: no baggage, never a
secret.

Nothing is traced unless the ``opentelemetry-api`` package is installed (the
``smtp2go-outbox[otel]`` extra) *and* a tracer provider is set (an app's own, or
``opentelemetry-instrument``'s): without one, each call here is a check of one flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: every call below is a no-op
    trace = None  # type: ignore[assignment]

__all__ = ["FIELDS", "active", "attached", "carrier", "chunk_parent", "send_context", "span"]

#: The record fields and header names the context travels in (W3C trace context).
FIELDS = ("traceparent", "tracestate")
_TRACER = "outbox"


def active() -> bool:
    """Whether spans are recorded here: the API is installed and a provider was set."""
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def carrier() -> dict[str, str]:
    """The current context as W3C headers (empty when there is no span to carry)."""
    if not active():
        return {}
    out: dict[str, str] = {}
    propagate.inject(out)
    return {k: v for k, v in out.items() if k in FIELDS}


@contextlib.contextmanager
def attached(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the context in ``headers`` current (a publish inside becomes its child)."""
    if not headers or not active():
        yield
        return
    token = otel_context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


def send_context(batches: Any, batch_id: str) -> dict[str, str]:
    """The trace context a send was recorded with (empty when none, or not tracing)."""
    if not active():
        return {}
    (row,) = batches.fields([batch_id], FIELDS)
    return {k: v for k, v in zip(FIELDS, row, strict=True) if v}


def chunk_parent(headers: Mapping[str, str] | None) -> Any:
    """The context a chunk's span starts in: the current one when it is already in the
    send's trace (Celery's instrumentation read the message's headers), else the send's
    own, from its record."""
    if not headers or not active():
        return None
    stored = propagate.extract(dict(headers))
    current = trace.get_current_span().get_span_context()
    wanted = trace.get_current_span(stored).get_span_context()
    if current.is_valid and current.trace_id == wanted.trace_id:
        return None
    return stored


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
    parent: Any = None,
    link: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """A span around the block (``None`` inside when nothing is traced), linked to the
    context in ``link`` when given; an exception leaving it marks the span an error."""
    if not active():
        yield None
        return
    tracer = trace.get_tracer(_TRACER)
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    links = None
    if link:
        linked = trace.get_current_span(propagate.extract(dict(link))).get_span_context()
        links = [trace.Link(linked)] if linked.is_valid else None
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=getattr(SpanKind, kind.upper(), SpanKind.INTERNAL),
        attributes=attrs,
        links=links,
    ) as current:
        yield current


def note(current: Any, **attributes: Any) -> None:
    """Set attributes on a span from :func:`span` (nothing when it is ``None``)."""
    if current is None:
        return
    for name, value in attributes.items():
        if value is not None:
            current.set_attribute(name.replace("__", "."), value)


def failed(current: Any, why: str) -> None:
    """Mark a span from :func:`span` as an error with ``why``."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, why))
