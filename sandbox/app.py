"""The ASGI app: the SMTP2GO ``/v3`` surface plus the ``/_sandbox`` control endpoints.

Every ``/v3`` request passes the same short pipeline, in the order a client meets these
conditions on the real service: a 429 storm, the shared rate limit (and activity
search's own), the API key, an injected failure, latency, the endpoint itself, and
finally a held-back answer for ``hang_next``. No middleware: at a few thousand requests
a second the per-request overhead is what the benchmark measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from outbox.sandbox.config import SandboxConfig, parse_activity_rate, parse_rate
from outbox.sandbox.handlers import HANDLERS, Handler, Sandbox
from outbox.sandbox.reports import REPORTS, REQUEST_ID_IN_DATA
from outbox.sandbox.state import (
    ENDPOINTS,
    SEND_ENDPOINTS,
    Decision,
    EndpointCounters,
    SandboxState,
    retry_after_seconds,
)
from outbox.sandbox.validation import NON_VALIDATING, ApiError
from outbox.sandbox.webhooks import WebhookDispatcher

__all__ = ["create_app"]

_KEY_FORMAT = re.compile(r"^api-[A-Za-z0-9]{32}$")
#: Base64 of a 50 MB message plus the JSON around it.
_MAX_BODY = 80 * 1024 * 1024
_RANDOM_FAILURES = (500, 502, 503)
#: What an injected ``fail_status`` says; permission errors come as 400 in the real API.
_INJECTED_ERRORS = {
    400: ("You do not have permission to access this API endpoint", "ENDPOINT_PERMISSION_DENIED"),
    401: ("API key is invalid", "API_KEY_INVALID"),
    402: ("The request was valid but could not be completed", "REQUEST_FAILED"),
    403: ("You do not have permission to access this API endpoint", "ENDPOINT_PERMISSION_DENIED"),
    404: ("Not found", "NOT_FOUND"),
    429: ("Too many requests; slow down and try again later", "RATE_LIMIT_EXCEEDED"),
}
_SERVER_ERROR = ("An unexpected error occurred; please try again", "API_EXCEPTION")
_BAD_GATEWAY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
_ROUTES: dict[str, Handler] = {**HANDLERS, **REPORTS}
assert set(_ROUTES) == set(ENDPOINTS), "every listed endpoint has exactly one handler"


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status, headers, media_type="application/json")


def _limit_headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(math.ceil(max(0.0, decision.reset))),
    }


async def _hold(request: Request, release: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if a reset releases held answers or the client hangs up.

    Ending early when the client has gone keeps a stopping server from waiting on an
    answer nobody will read.
    """

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    waiters = {asyncio.ensure_future(release.wait()), asyncio.ensure_future(client_gone())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class _Api:
    """The ``/v3`` pipeline, bound to one sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def _error(self, request_id: str, exc: ApiError, headers: dict[str, str]) -> Response:
        counters = self.sb.state.counters
        if exc.status == 400:
            counters.invalid += 1
        elif exc.status == 401:
            counters.unauthorized += 1
        elif exc.status == 404:
            counters.not_found += 1
        return _json({"request_id": request_id, "data": exc.data()}, exc.status, headers)

    def _too_many(
        self, request_id: str, wait: float, headers: dict[str, str], ep: EndpointCounters | None
    ) -> Response:
        state = self.sb.state
        state.counters.rate_limited += 1
        if ep is not None:
            ep.rate_limited += 1
        if state.faults.retry_after:
            headers = {**headers, "Retry-After": str(retry_after_seconds(wait))}
        data = {
            "error": "Too many requests; slow down and try again later",
            "error_code": "E_ApiResponseCodes.RATE_LIMIT_EXCEEDED",
        }
        return _json({"request_id": request_id, "data": data}, 429, headers)

    def _injected(self, request_id: str, status: int, headers: dict[str, str]) -> Response:
        if status == 502:  # what a proxy in front of the API answers: not JSON at all
            return Response(_BAD_GATEWAY, 502, headers, media_type="text/html")
        if status == 429 and self.sb.state.faults.retry_after:
            headers = {**headers, "Retry-After": "1"}
        error, code = _INJECTED_ERRORS.get(status, _SERVER_ERROR)
        data = {"error": error, "error_code": f"E_ApiResponseCodes.{code}"}
        return _json({"request_id": request_id, "data": data}, status, headers)

    def _authorized(self, key: Any) -> bool:
        if not isinstance(key, str) or not key:
            return False
        expected = self.sb.state.api_key
        if expected is None:
            return _KEY_FORMAT.match(key) is not None
        return hmac.compare_digest(key.encode(), expected.encode())

    def _injected_status(self, path: str) -> int:
        faults = self.sb.state.faults
        if faults.fail_endpoints is not None and path not in faults.fail_endpoints:
            return 0
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return faults.fail_status
        rng = self.sb.state.rng
        if faults.fail_rate and rng.random() < faults.fail_rate:
            return rng.choice(_RANDOM_FAILURES)
        return 0

    async def handle(self, request: Request) -> Response:
        state = self.sb.state
        counters = state.counters
        faults = state.faults
        path: str = request.path_params["path"]
        counters.requests += 1
        ep = counters.by_endpoint.get(path)
        if ep is not None:
            ep.requests += 1
        request_id = state.uuid()
        now = time.monotonic()
        headers: dict[str, str] = {}

        limiter = state.limiter
        if faults.storm_until > now:
            if limiter is not None:
                headers = _limit_headers(limiter.peek(now))
            return self._too_many(request_id, faults.storm_until - now, headers, ep)
        if limiter is not None:
            decision = limiter.acquire(now)
            headers = _limit_headers(decision)
            if not decision.allowed:
                return self._too_many(request_id, decision.reset, headers, ep)
        if path == "activity/search" and state.activity_limiter is not None:
            decision = state.activity_limiter.acquire(now)
            if not decision.allowed:
                return self._too_many(request_id, decision.reset, headers, ep)

        raw = await request.body()
        if len(raw) > _MAX_BODY:
            exc = ApiError(413, "The request is too large", NON_VALIDATING)
            return self._error(request_id, exc, headers)
        body: Any
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        key = request.headers.get("x-smtp2go-api-key")
        if not key and isinstance(body, dict):
            key = body.get("api_key")
        if not self._authorized(key):
            message = "API key is missing" if not key else "API key is invalid"
            exc = ApiError(401, message, "E_ApiResponseCodes.API_KEY_INVALID")
            return self._error(request_id, exc, headers)
        handler = _ROUTES.get(path)
        if handler is None:
            exc = ApiError(404, f"No endpoint /v3/{path}", "E_ApiResponseCodes.ENDPOINT_NOT_FOUND")
            return self._error(request_id, exc, headers)
        assert ep is not None
        if not isinstance(body, dict):
            exc = ApiError(400, "The request body must be a JSON object", NON_VALIDATING)
            return self._error(request_id, exc, headers)

        if faults.fail_next or faults.fail_rate:
            status = self._injected_status(path)
            if status:
                counters.injected_failures += 1
                ep.injected_failures += 1
                return self._injected(request_id, status, headers)
        if state.latency:
            await asyncio.sleep(state.latency)
        try:
            data = handler(self.sb, body, request_id)
        except ApiError as exc:
            return self._error(request_id, exc, headers)
        counters.accepted += 1
        ep.accepted += 1
        if faults.hang_next > 0 and path in SEND_ENDPOINTS:
            # Accepted and recorded, but the answer comes too late for a client with a
            # shorter timeout: the ambiguous case an idempotent client must resolve.
            faults.hang_next -= 1
            counters.hung += 1
            await _hold(request, state.release, faults.hang_seconds)
        if path in REQUEST_ID_IN_DATA:
            return _json({"data": data}, 200, headers)
        return _json({"request_id": request_id, "data": data}, 200, headers)


# -- control endpoints --------------------------------------------------------------------


def _config_view(state: SandboxState) -> dict[str, Any]:
    faults = state.faults
    return {
        "rate": str(state.limiter) if state.limiter else None,
        "activity_rate": str(state.activity_limiter) if state.activity_limiter else None,
        "latency_ms": state.latency * 1000.0,
        "fail_rate": faults.fail_rate,
        "fail_next": faults.fail_next,
        "fail_status": faults.fail_status,
        "fail_endpoints": sorted(faults.fail_endpoints) if faults.fail_endpoints else None,
        "hang_next": faults.hang_next,
        "hang_seconds": faults.hang_seconds,
        "storm_seconds": max(0.0, faults.storm_until - time.monotonic()),
        "retry_after": faults.retry_after,
        "verified_domains": sorted(state.verified_domains)
        if state.verified_domains is not None
        else None,
        "bounce_domain": state.bounce_domain,
        "webhook_retries": state.webhook_retries,
        "webhook_timeout": state.webhook_timeout,
        "webhook_backoff": state.webhook_backoff,
        "suppress_bounces": state.suppress_bounces,
        "api_key_fixed": state.api_key is not None,
    }


class ConfigError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(value: Any, field: str, *, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(field, f"{field} must be a number from {low:g} to {high:g}")
    return float(value)


def _count(value: Any, field: str, *, low: int = 0, high: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, f"{field} must be a whole number from {low} to {high}")
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"{field} must be true or false")
    return value


def _validated_config(body: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise every key first, so a bad request changes nothing."""
    values: dict[str, Any] = {}
    for field, value in body.items():
        if field in ("rate", "activity_rate"):
            parse = parse_rate if field == "rate" else parse_activity_rate
            try:
                values[field] = parse(value)
            except ValueError as exc:
                raise ConfigError(field, str(exc)) from None
        elif field == "latency_ms":
            values[field] = _number(value, field)
        elif field == "fail_rate":
            values[field] = _number(value, field, high=1.0)
        elif field in ("fail_next", "hang_next"):
            values[field] = _count(value, field)
        elif field == "fail_status":
            values[field] = _count(value, field, low=400, high=599)
        elif field == "fail_endpoints":
            if value is not None and (
                not isinstance(value, list) or not value or not set(value) <= set(ENDPOINTS)
            ):
                raise ConfigError(field, f"{field} must be null or a list of endpoints")
            values[field] = frozenset(value) if value is not None else None
        elif field in ("hang_seconds", "storm_seconds"):
            values[field] = _number(value, field, high=3600.0)
        elif field in ("retry_after", "suppress_bounces"):
            values[field] = _flag(value, field)
        elif field == "verified_domains":
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(d, str) for d in value)
            ):
                raise ConfigError(field, f"{field} must be null or a list of domains")
            values[field] = value
        elif field == "bounce_domain":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(field, f"{field} must be a domain")
            values[field] = value.strip().lower()
        elif field == "webhook_retries":
            values[field] = _count(value, field, high=100)
        elif field in ("webhook_timeout", "webhook_backoff"):
            values[field] = _number(value, field, high=600.0)
        elif field == "seed":
            values[field] = _count(value, field, high=2**63)
        else:
            raise ConfigError(field, f"unknown setting {field!r}")
    return values


_FAULT_FIELDS = frozenset(
    {"fail_rate", "fail_next", "fail_status", "fail_endpoints", "hang_next", "hang_seconds"}
)
_STATE_FIELDS = frozenset(
    {"bounce_domain", "webhook_retries", "webhook_timeout", "webhook_backoff", "suppress_bounces"}
)


def _apply_config(state: SandboxState, values: dict[str, Any]) -> None:
    faults = state.faults
    for field, value in values.items():
        if field == "rate":
            state.set_rate(value)
        elif field == "activity_rate":
            state.set_activity_rate(value)
        elif field == "latency_ms":
            state.latency = value / 1000.0
        elif field == "storm_seconds":
            faults.storm_until = time.monotonic() + value if value else 0.0
        elif field == "retry_after":
            faults.retry_after = value
        elif field == "verified_domains":
            state.set_verified_domains(value)
        elif field == "seed":
            state.rng.seed(value)
        elif field in _FAULT_FIELDS:
            setattr(faults, field, value)
        elif field in _STATE_FIELDS:
            setattr(state, field, value)


def _stats(sb: Sandbox) -> dict[str, Any]:
    counters = sb.state.counters
    return {
        "requests": counters.requests,
        "accepted": counters.accepted,
        "rate_limited": counters.rate_limited,
        "injected_failures": counters.injected_failures,
        "hung": counters.hung,
        "invalid": counters.invalid,
        "unauthorized": counters.unauthorized,
        "not_found": counters.not_found,
        "messages": len(sb.state.messages),
        "by_endpoint": {path: c.as_dict() for path, c in counters.by_endpoint.items()},
        "webhooks_delivered": counters.webhooks_delivered,
        "webhooks_failed": counters.webhooks_failed,
        "webhooks_skipped": counters.webhooks_skipped,
        "webhooks_pending": sb.webhooks.pending,
    }


async def _json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_app(config: SandboxConfig) -> Starlette:
    """A fresh sandbox with its own state; ``config`` is what ``reset`` returns to."""
    state = SandboxState(config)
    sb = Sandbox(state, WebhookDispatcher(state))

    async def messages(request: Request) -> Response:
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            return _json({"error": "since must be a message index"}, 400)
        start = int(since)
        records = state.messages[start:]
        return _json(
            {"messages": [r.as_dict() for r in records], "next": start + len(records)},
        )

    async def stats(request: Request) -> Response:
        return _json(_stats(sb))

    async def reset(request: Request) -> Response:
        await sb.webhooks.cancel_all()
        state.reset()
        return _json({"reset": True, "config": _config_view(state)})

    async def configure(request: Request) -> Response:
        if request.method == "GET":
            return _json(_config_view(state))
        body = await _json_object(request)
        if body is None:
            return _json({"error": "expected a JSON object"}, 400)
        try:
            values = _validated_config(body)
        except ConfigError as exc:
            return _json({"error": str(exc), "field": exc.field}, 400)
        _apply_config(state, values)
        return _json(_config_view(state))

    async def webhook_log(request: Request) -> Response:
        counters = state.counters
        return _json(
            {
                "deliveries": list(state.deliveries),
                "delivered": counters.webhooks_delivered,
                "failed": counters.webhooks_failed,
                "skipped": counters.webhooks_skipped,
                "pending": sb.webhooks.pending,
            }
        )

    async def sms_inbound(request: Request) -> Response:
        body = await _json_object(request)
        fields = ("source_address", "destination_address", "content")
        if body is None or not all(isinstance(body.get(f), str) for f in fields):
            return _json({"error": f"expected a JSON object with {', '.join(fields)}"}, 400)
        now = time.time()
        message = {f: body[f] for f in fields}
        message.update(
            {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
                "message_id": state.uuid(),
                "username": "api",
                "time": now,
            }
        )
        state.sms_received.append(message)
        return _json({k: v for k, v in message.items() if k != "time"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sb.webhooks.close()

    app = Starlette(
        routes=[
            Route("/v3/{path:path}", _Api(sb).handle, methods=["POST"]),
            Route("/_sandbox/messages", messages, methods=["GET"]),
            Route("/_sandbox/stats", stats, methods=["GET"]),
            Route("/_sandbox/reset", reset, methods=["POST"]),
            Route("/_sandbox/config", configure, methods=["GET", "POST"]),
            Route("/_sandbox/webhooks", webhook_log, methods=["GET"]),
            Route("/_sandbox/sms/inbound", sms_inbound, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sb
    return app
