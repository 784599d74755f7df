"""The webhook receiver: SMTP2GO's delivery events in, one Celery task per event out.

Routes::

    POST /webhooks/smtp2go   verify -> parse -> enqueue -> 200 {"ok": true, "received": n}
    GET  /healthz            200 {"ok": true}
    GET  /metrics            Prometheus: events by type, posts by answer (the ``metrics``
                             extra; counts only, see :mod:`outbox.worker.metrics.receiver`)

Entry points::

    create_app(*, secret, insecure=False, enqueue=None, max_body=1_000_000, metrics=None)
    run(host="127.0.0.1", port=8026, *, secret, insecure=False, max_body=1_000_000) -> None
    python -m outbox.worker.webhooks --host 127.0.0.1 --port 8026 [--secret S] [--insecure]

``run`` blocks (uvicorn) and is what ``outbox webhooks`` calls with
``secret=settings.webhook_secret`` (a ``SecretStr`` or a plain string; ``None`` refuses to
start unless ``insecure=True``).

SMTP2GO does not sign webhooks; the protection is the ``Authorization`` header chosen at
``webhook/add``: ``auth_header_type`` ``bearer`` with the secret as the token, or
``basic`` with the secret as the password (any user name). Both are compared in
constant time. Answers: 401 without valid credentials, 413 over ``max_body`` (the
``Content-Length`` and the bytes actually streamed), 400 for a body that is not an event
(not JSON or a form, not an object, no ``event``), 500 for anything unexpected, so the
provider retries (it does, up to 35 times over 48 hours, each time with the same ``id``;
the task keeps one record per ``id``, see :func:`worker.webhooks.events.event_key`).

Bodies come as SMTP2GO sends them: ``application/x-www-form-urlencoded`` (the default
``output_format``; a list such as ``processed``'s ``recipients`` is a repeated field) or
JSON (one object, or a list of them); multipart forms are read too.

The events are published before the 200, not after: a publish is one quick broker
write, and answering 200 first would lose the event for good if the broker then failed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from outbox.worker.webhooks.parse import (
    EVENT_NAMES,
    InvalidPayload,
    normalise,
    parse_form,
    parse_json,
    payloads_from_pairs,
)

if TYPE_CHECKING:
    from outbox.worker.metrics.receiver import ReceiverMetrics

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_PORT", "PATH", "celery_enqueue", "create_app", "run"]

logger = logging.getLogger(__name__)

PATH = "/webhooks/smtp2go"
DEFAULT_PORT = 8026
#: SMTP2GO events are a few hundred bytes; a megabyte leaves room for lists of them.
DEFAULT_MAX_BODY = 1_000_000

Enqueue = Callable[[dict[str, Any]], None]


def celery_enqueue(event: dict[str, Any]) -> None:
    """Publish one normalised event to ``outbox.record_event`` on the ``email`` queue."""
    # Imported on first use: an app built with its own ``enqueue`` (tests) needs no
    # broker configuration at all.
    from outbox.core.queues import Queue, TaskName
    from outbox.worker.publish import Task, publish

    publish([Task(TaskName.RECORD_EVENT, [event], Queue.EMAIL)])


class _Reject(Exception):
    """An answer decided before the body is parsed (401, 413, a bad header)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _answer(status: int, error: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="outbox"'} if status == 401 else None
    return JSONResponse({"ok": False, "error": error}, status_code=status, headers=headers)


def authorised(header: bytes | None, secret: bytes) -> bool:
    """``Bearer <secret>``, or HTTP Basic whose password is the secret (any user)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(b" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == b"bearer":
        return hmac.compare_digest(value, secret)
    if scheme == b"basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        _, colon, password = decoded.partition(b":")
        return bool(colon) and hmac.compare_digest(password, secret)
    return False


def _authorization(request: Request) -> bytes | None:
    # The raw bytes: Starlette's str headers are latin-1, a UTF-8 secret would not match.
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise _Reject(400, "bad Content-Length")
        if int(length) > limit:
            raise _Reject(413, f"body over {limit} bytes")
    # Content-Length may be absent (chunked) or wrong: count what actually arrives.
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Reject(413, f"body over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _parse_multipart(headers: Headers, body: bytes) -> list[dict[str, Any]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=0, max_fields=1000).parse()
    except MultiPartException as exc:
        raise InvalidPayload(f"bad multipart body: {exc.message}") from None
    return [payloads_from_pairs((k, v) for k, v in form.multi_items() if isinstance(v, str))]


async def _payloads(request: Request, body: bytes) -> list[dict[str, Any]]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return parse_json(body)
    if media == "application/x-www-form-urlencoded":
        return parse_form(body)
    if media == "multipart/form-data":
        return await _parse_multipart(request.headers, body)
    # No or an odd content type: go by the body's first character.
    if body.lstrip()[:1] in (b"{", b"["):
        return parse_json(body)
    return parse_form(body)


def create_app(
    *,
    secret: str | None,
    insecure: bool = False,
    enqueue: Enqueue | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    metrics: bool | None = None,
) -> Starlette:
    """The receiver. Without a ``secret`` it refuses to build unless ``insecure`` is true,
    in which case it accepts anyone's events (and says so in the log).

    ``metrics``: serve ``/metrics`` (true: the ``metrics`` extra must be installed;
    ``None``: when it is; false: never)."""
    if not secret and not insecure:
        raise ValueError(
            "the webhook receiver needs a secret (OUTBOX_WEBHOOK_SECRET): SMTP2GO does not "
            "sign webhooks, so without one anybody can post events; pass insecure=True "
            "(--insecure) only for local experiments"
        )
    if max_body < 1:
        raise ValueError("max_body must be positive")
    key = secret.encode("utf-8") if secret else None
    if key is None:
        logger.warning(
            "webhook receiver running WITHOUT authentication (--insecure): anyone who can "
            "reach it can write delivery events and suppress addresses"
        )
    publish = enqueue or celery_enqueue
    counts = _receiver_metrics(metrics)

    def publish_all(events: list[dict[str, Any]]) -> None:
        for event in events:
            publish(event)

    async def receive(request: Request) -> Response:
        response = await handle(request)
        if counts is not None:
            counts.answered(response.status_code)
        return response

    async def handle(request: Request) -> Response:
        try:
            if key is not None and not authorised(_authorization(request), key):
                client = request.client.host if request.client else "?"
                logger.warning("webhook from %s refused: missing or wrong credentials", client)
                return _answer(401, "unauthorised")
            body = await _read_body(request, max_body)
            payloads = await _payloads(request, body)
            now = time.time()
            # One microsecond apart, so a list's order survives sorting by received_at.
            events = [normalise(p, received_at=now + i * 1e-6) for i, p in enumerate(payloads)]
            for event in events:
                if event["provider_event"].lower() not in EVENT_NAMES:
                    logger.info("unknown SMTP2GO event %r kept as is", event["provider_event"])
            await run_in_threadpool(publish_all, events)
            if counts is not None:
                counts.received(events)
        except _Reject as exc:
            return _answer(exc.status, exc.error)
        except InvalidPayload as exc:
            return _answer(400, str(exc))
        except ClientDisconnect:
            return _answer(400, "client went away")
        except Exception:
            logger.exception("webhook could not be handled; answering 500 so SMTP2GO retries")
            return _answer(500, "internal error")
        return JSONResponse({"ok": True, "received": len(events)})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route(PATH, receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if counts is not None:
        from outbox.worker.metrics.receiver import CONTENT_TYPE

        async def scrape(request: Request) -> Response:
            return Response(counts.render(), media_type=CONTENT_TYPE)

        routes.append(Route("/metrics", scrape, methods=["GET"]))
    app = Starlette(routes=routes)
    app.state.insecure = key is None
    app.state.max_body = max_body
    return app


def _receiver_metrics(wanted: bool | None) -> ReceiverMetrics | None:
    if wanted is False:
        return None
    try:
        from outbox.worker.metrics.receiver import ReceiverMetrics
    except ImportError:
        if wanted:
            raise ValueError(
                "metrics need prometheus-client: pip install 'smtp2go-outbox[metrics]'"
            ) from None
        return None
    return ReceiverMetrics()


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    secret: str | SecretStr | None,
    insecure: bool = False,
    max_body: int = DEFAULT_MAX_BODY,
) -> None:
    """Serve the receiver until interrupted (the ``outbox webhooks`` command).

    Raises ``ValueError`` before binding anything when there is no secret and
    ``insecure`` is false.
    """
    import uvicorn

    from outbox.worker.logs import install_secret_filter

    plain = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    app = create_app(secret=plain, insecure=insecure, max_body=max_body)
    if plain:
        install_secret_filter(plain)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
