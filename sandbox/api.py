"""The ``/v3`` pipeline: every SMTP2GO request passes these steps, in this order.

1. ``latency_jitter_ms``: a random wait on the way in; the request "arrives" after it.
2. A 429 storm, then the client's timeout (:mod:`~outbox.sandbox.limits`), then the
   shared ``rate`` and ``activity/search``'s own limit: going over starts a timeout.
3. The body, the API key (``X-Smtp2go-Api-Key`` or ``api_key`` in the body), the route.
4. An injected failure (``fail_next``, ``fail_rate``), then ``latency_ms``.
5. The endpoint itself; a held-back answer for ``hang_next``.
6. A 4xx answer other than 429 counts against ``error_limit``.

No middleware: at a few thousand requests a second the per-request overhead is what the
benchmark measures.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from outbox.sandbox.activity import ACTIVITY, REQUEST_ID_IN_DATA
from outbox.sandbox.common import Call, Handler, Sandbox
from outbox.sandbox.endpoints import ALWAYS_ALLOWED, ENDPOINTS, SEND_ENDPOINTS
from outbox.sandbox.limits import (
    ACTIVITY_SCOPE,
    API_SCOPE,
    Decision,
    limit_headers,
    retry_after_seconds,
)
from outbox.sandbox.reports import REPORTS
from outbox.sandbox.sending import SENDING
from outbox.sandbox.state import EndpointCounters
from outbox.sandbox.suppressions import SUPPRESSIONS
from outbox.sandbox.templates import TEMPLATES
from outbox.sandbox.validation import NON_VALIDATING, ApiError
from outbox.sandbox.webhook_api import WEBHOOK_API

__all__ = ["ROUTES", "V3", "json_response"]

KEY_FORMAT = re.compile(r"^api-[A-Za-z0-9]{32}$")
#: The request bodies the service takes since 2026-06-11 (developer changelog), counted
#: as the bytes received: 50 MB for ``/v3/email*``, 1 MB for every other call.
MAX_EMAIL_BODY = 50_000_000
MAX_BODY = 1_000_000
_RANDOM_FAILURES = (500, 502, 503)
#: What an injected ``fail_status`` says; permission errors come as 400 in the real API.
_INJECTED_ERRORS = {
    400: ("You do not have permission to access this API endpoint", "ENDPOINT_PERMISSION_DENIED"),
    401: ("API key is invalid", "API_KEY_INVALID"),
    402: ("The request was valid but could not be completed", "REQUEST_FAILED"),
    403: ("You do not have permission to access this API endpoint", "ENDPOINT_PERMISSION_DENIED"),
    404: ("Not found", "NOT_FOUND"),
}
_SERVER_ERROR = ("An unexpected error occurred; please try again", "API_EXCEPTION")
_BAD_GATEWAY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def _too_many_requests(headers: dict[str, str]) -> Response:
    """429 as documented: "Too Many Requests" with no error code, no body and no hint
    (the OpenAPI's 429s have only a description, "Rate Limit Exceeded"; its Postman
    collection's example is an empty ``text/plain``). A client must not need a body."""
    return Response(b"", 429, headers, media_type="text/plain")


ROUTES: dict[str, Handler] = {
    **SENDING,
    **TEMPLATES,
    **WEBHOOK_API,
    **SUPPRESSIONS,
    **REPORTS,
    **ACTIVITY,
    "api_keys/permissions": lambda sb, body, call: {
        "endpoints": sorted(f"/{name}" for name in (sb.state.key_permissions or ENDPOINTS)),
    },
}
assert set(ROUTES) == set(ENDPOINTS), "every listed endpoint has exactly one handler"


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status, headers, media_type="application/json")


def short_key(key: str) -> str:
    """``auth`` of a webhook event: "A shortened version of the API key" (``api-`` + 12)."""
    return key[:16]


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


class V3:
    """The ``/v3`` pipeline, bound to one sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    # -- answers --------------------------------------------------------------------------

    def _error(self, request_id: str, exc: ApiError, headers: dict[str, str]) -> Response:
        counters = self.sb.state.counters
        if exc.status == 400:
            counters.invalid += 1
        elif exc.status == 401:
            counters.unauthorized += 1
        elif exc.status == 404:
            counters.not_found += 1
        return json_response({"request_id": request_id, "data": exc.data()}, exc.status, headers)

    def _too_many(
        self, request_id: str, wait: float, decision: Decision | None, ep: EndpointCounters | None
    ) -> Response:
        """429; the hints only under ``rate_headers``, as the real service promises none."""
        state = self.sb.state
        state.counters.rate_limited += 1
        if ep is not None:
            ep.rate_limited += 1
        headers: dict[str, str] = {}
        if state.rate_headers:
            if decision is not None:
                headers = limit_headers(decision._replace(remaining=0, reset=max(wait, 0.0)))
            headers["Retry-After"] = str(retry_after_seconds(wait))
        return _too_many_requests(headers)

    def _key_rate_exceeded(self, request_id: str, ep: EndpointCounters) -> Response:
        """Over the key's own limit: a 429 with the message the rate-limiting page quotes
        (the shape and the missing error code are assumed); the IP is not timed out."""
        self.sb.state.counters.rate_limited += 1
        ep.rate_limited += 1
        data = {"error": "API key ratelimit exceeded"}
        return json_response({"request_id": request_id, "data": data}, 429, {})

    def _injected(self, request_id: str, status: int, headers: dict[str, str]) -> Response:
        if status == 502:  # what a proxy in front of the API answers: not JSON at all
            return Response(_BAD_GATEWAY, 502, headers, media_type="text/html")
        if status == 429:
            hint = {"Retry-After": "1"} if self.sb.state.rate_headers else {}
            return _too_many_requests({**headers, **hint})
        error, code = _INJECTED_ERRORS.get(status, _SERVER_ERROR)
        data = {"error": error, "error_code": f"E_ApiResponseCodes.{code}"}
        return json_response({"request_id": request_id, "data": data}, status, headers)

    # -- checks ---------------------------------------------------------------------------

    def _authorized(self, key: Any) -> bool:
        if not isinstance(key, str) or not key:
            return False
        expected = self.sb.state.api_key
        if expected is None:
            return KEY_FORMAT.match(key) is not None
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

    def _limited(
        self, path: str, client: str, request_id: str, ep: EndpointCounters | None
    ) -> tuple[Response | None, dict[str, str]]:
        """A 429 when the client may not be served now, else the headers to send."""
        state = self.sb.state
        now = time.monotonic()
        limiter, timeouts = state.limiter, state.timeouts
        if state.faults.storm_until > now:
            peek = limiter.peek(now) if limiter is not None else None
            return self._too_many(request_id, state.faults.storm_until - now, peek, ep), {}
        left = timeouts.left(API_SCOPE, client, now)
        if left > 0:
            peek = limiter.peek(now) if limiter is not None else None
            return self._too_many(request_id, left, peek, ep), {}
        headers: dict[str, str] = {}
        if limiter is not None:
            decision = limiter.acquire(now)
            if not decision.allowed:
                timeouts.start(API_SCOPE, client, "rate", now, state.penalty)
                wait = state.penalty or decision.reset
                return self._too_many(request_id, wait, decision, ep), {}
            if state.rate_headers:
                headers = limit_headers(decision)
        if path == "activity/search" and state.activity_limiter is not None:
            left = timeouts.left(ACTIVITY_SCOPE, client, now)
            if left > 0:
                return self._too_many(request_id, left, None, ep), {}
            decision = state.activity_limiter.acquire(now)
            if not decision.allowed:
                timeouts.start(ACTIVITY_SCOPE, client, "activity_rate", now, state.penalty)
                wait = state.penalty or decision.reset
                return self._too_many(request_id, wait, None, ep), {}
        return None, headers

    # -- the pipeline ---------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        state = self.sb.state
        if state.jitter:
            await asyncio.sleep(state.rng.uniform(0.0, state.jitter))
        client = request.client.host if request.client is not None else "unknown"
        response = await self._answer(request, client)
        status = response.status_code
        windows = state.error_windows
        if windows is not None and 400 <= status < 500 and status != 429:
            now = time.monotonic()
            if windows.over(client, now):
                state.timeouts.start(API_SCOPE, client, "errors", now, state.penalty)
        return response

    async def _answer(self, request: Request, client: str) -> Response:
        state = self.sb.state
        counters = state.counters
        faults = state.faults
        path: str = request.path_params["path"]
        counters.requests += 1
        ep = counters.by_endpoint.get(path)
        if ep is not None:
            ep.requests += 1
        request_id = state.uuid()
        arrival = time.time()
        refused, headers = self._limited(path, client, request_id, ep)
        if refused is not None:
            return refused

        raw = await request.body()
        if len(raw) > (MAX_EMAIL_BODY if path.startswith("email/") else MAX_BODY):
            exc = ApiError(413, "The request is too large", NON_VALIDATING)
            return self._error(request_id, exc, headers)
        body: Any
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        key = request.headers.get("x-smtp2go-api-key")
        if not key:
            # the service also takes the key as a bearer token (developer changelog 2026-09)
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                key = token.strip()
        if not key and isinstance(body, dict):
            key = body.get("api_key")
        if not self._authorized(key):
            message = "API key is missing" if not key else "API key is invalid"
            exc = ApiError(401, message, "E_ApiResponseCodes.API_KEY_INVALID")
            return self._error(request_id, exc, headers)
        handler = ROUTES.get(path)
        if handler is None:
            exc = ApiError(404, f"No endpoint /v3/{path}", "E_ApiResponseCodes.ENDPOINT_NOT_FOUND")
            return self._error(request_id, exc, headers)
        assert ep is not None
        allowed = state.key_permissions
        if allowed is not None and path not in allowed and path not in ALWAYS_ALLOWED:
            # SMTP2GO-API.md ("permission errors"): usually HTTP 400 with this code
            exc = ApiError(
                400,
                f"The API key does not have permission to use the endpoint /{path}",
                "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED",
            )
            return self._error(request_id, exc, headers)
        if not isinstance(body, dict):
            exc = ApiError(400, "The request body must be a JSON object", NON_VALIDATING)
            return self._error(request_id, exc, headers)
        limiter = state.key_limiter
        if (
            limiter is not None
            and path in SEND_ENDPOINTS
            and not limiter.acquire(time.monotonic()).allowed
        ):
            return self._key_rate_exceeded(request_id, ep)

        if faults.fail_next or faults.fail_rate:
            status = self._injected_status(path)
            if status:
                counters.injected_failures += 1
                ep.injected_failures += 1
                return self._injected(request_id, status, headers)
        if state.latency:
            await asyncio.sleep(state.latency)
        call = Call(request_id, arrival, client, short_key(str(key)))
        try:
            data = handler(self.sb, body, call)
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
            return json_response({"data": data}, 200, headers)
        return json_response({"request_id": request_id, "data": data}, 200, headers)
