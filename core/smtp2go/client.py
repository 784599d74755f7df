"""The SMTP2GO v3 HTTP client: one request per call, typed answers, the project's errors.

``client.call(endpoint, request)`` sends one request to an endpoint of the table in
:mod:`.endpoints` and returns its answer model. It never retries: the task owns the
policy (:mod:`outbox.worker.policy`), so a wait survives a worker restart and frees the
worker meanwhile. A 200 whose answer says the email was refused is returned, not raised
(:attr:`~outbox.core.smtp2go.answers.SendResult.refused`): the API took the request.

The key travels only in the ``X-Smtp2go-Api-Key`` header: never in a body, a repr,
an error message or a log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from httpx import _models as _httpx_models
from pydantic import ValidationError

from outbox.core.errors import (
    BadRequestError,
    RequestTimeout,
    TransportError,
    UnexpectedStatusError,
    redact,
)
from outbox.core.smtp2go.answers import ResultModel
from outbox.core.smtp2go.checks import request_limit, too_large
from outbox.core.smtp2go.endpoints import Endpoint
from outbox.core.smtp2go.requests import WireModel
from outbox.core.smtp2go.responses import error_from_response
from outbox.core.smtp2go.transport import ThreadTransport
from outbox.core.text import wire_json

__all__ = ["API_KEY_HEADER", "DEFAULT_TIMEOUT", "SMTP2GOClient"]

logger = logging.getLogger(__name__)

#: The only place the key is sent.
API_KEY_HEADER = "X-Smtp2go-Api-Key"
#: Connecting and waiting for a pooled connection should be quick; SMTP2GO may take a
#: while to answer a send with large attachments.
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 5.0
DEFAULT_TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT, read=30.0, write=30.0, pool=POOL_TIMEOUT)


def _mask_key_header() -> None:
    """Have httpx mask our key header in the ``repr`` of headers, as it masks
    ``Authorization``, so a logged request never shows the key. Done when a client is
    built (in a worker), never on import: a producer importing the models is untouched."""
    sensitive = getattr(_httpx_models, "SENSITIVE_HEADERS", None)
    if isinstance(sensitive, set):
        sensitive.add(API_KEY_HEADER.lower())


#: httpx errors raised before any byte of the request could have reached the server.
_SURELY_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)

R = TypeVar("R", bound=ResultModel)
#: Told of every request: the endpoint's path, seconds taken, the status (``None``: no
#: answer came back).
Observer = Callable[[str, float, int | None], None]


def _timeout(value: float | httpx.Timeout) -> httpx.Timeout:
    """A float is the read/write timeout; connect and pool waits stay short."""
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(value, connect=min(value, CONNECT_TIMEOUT), pool=min(value, POOL_TIMEOUT))


class SMTP2GOClient:
    """A synchronous SMTP2GO v3 client: one httpx transport per process, each thread on a
    keep-alive connection of its own (:mod:`.transport`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "outbox/0.1",
        observe: Observer | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty")
        if any(ch in api_key for ch in "\r\n\x00"):
            raise ValueError("api_key contains control characters")
        _mask_key_header()
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        #: Told of every request (its time and status), for metrics.
        self.observe = observe
        self._headers = httpx.Headers(
            {
                API_KEY_HEADER: api_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": user_agent,
            }
        )
        self._timeout = {"timeout": _timeout(timeout).as_dict()}
        self._transport = transport if transport is not None else ThreadTransport()
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    # ------------------------------------------------------------------ the one boundary

    def _request(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path``; the only place httpx exceptions become ours."""
        path = path.strip("/")
        started = time.monotonic()
        try:
            status, headers, content = self._post(path, body)
        except httpx.HTTPError as exc:
            self._note(path, started, None)
            raise self._error(exc, path) from exc
        elapsed_ms = self._note(path, started, status) * 1000
        if not 200 <= status < 300:
            response = httpx.Response(status, headers=headers, content=content)
            error = error_from_response(response, secrets=(self._api_key,))
            logger.debug(
                "POST %s -> %s %s in %.0f ms (request_id=%s)",
                path,
                status,
                type(error).__name__,
                elapsed_ms,
                error.request_id,
            )
            raise error
        try:
            payload: Any = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise UnexpectedStatusError(
                f"{path} answered {status} without a JSON object", status_code=status
            )
        logger.debug(
            "POST %s -> %s in %.0f ms (request_id=%s)",
            path,
            status,
            elapsed_ms,
            payload.get("request_id"),
        )
        return payload

    def _post(self, path: str, body: Mapping[str, Any]) -> tuple[int, Any, bytes]:
        """One POST straight to the transport: ``(status, headers, body)``.

        An API client needs none of what ``httpx.Client`` adds per request (cookies, auth
        flows, redirects, event hooks), and building httpx's request and response objects
        was a tenth of a worker's CPU per send; the default transport sends the bytes
        itself (:meth:`ThreadTransport.post`). Any transport still maps every error to
        httpx's own."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(f"{self.base_url}/{path}")
        content = wire_json(body)
        if len(content) > request_limit(path):
            # the service refuses it (changelog 2026-06-11): sending it could only fail,
            # and would count towards the IP's error timeout
            raise BadRequestError(
                too_large(path, len(content), "the body", len(content)), status_code=413
            )
        if isinstance(self._transport, ThreadTransport):
            return self._transport.post(url, self._headers.raw, content, self._timeout)
        request = httpx.Request(
            "POST", url, headers=self._headers, content=content, extensions=self._timeout
        )
        response = self._transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response.status_code, response.headers, response.content

    def _error(self, exc: httpx.HTTPError, path: str) -> TransportError:
        """The one place httpx's errors become ours: was the request sent?"""
        if isinstance(exc, httpx.TimeoutException):
            return RequestTimeout(
                self._describe(exc, path), ambiguous=not isinstance(exc, _SURELY_NOT_SENT)
            )
        if isinstance(exc, httpx.TransportError):
            return TransportError(
                self._describe(exc, path), ambiguous=not isinstance(exc, _SURELY_NOT_SENT)
            )
        # DecodingError and the like: an answer came back, so the request arrived.
        return TransportError(self._describe(exc, path), ambiguous=True)

    def _note(self, path: str, started: float, status: int | None) -> float:
        """Seconds since ``started``, told to the observer."""
        elapsed = time.monotonic() - started
        if self.observe is not None:
            self.observe(path, elapsed, status)
        return elapsed

    def _describe(self, exc: Exception, path: str) -> str:
        detail = redact(str(exc), self._api_key) or "no detail"
        return f"{type(exc).__name__} on POST {path}: {detail}"

    def call(self, endpoint: Endpoint[R], body: WireModel | Mapping[str, Any] | None = None) -> R:
        """One request to ``endpoint``: ``body`` is its request model, or a mapping that
        is validated as one (refused with pydantic's error before anything is sent)."""
        if isinstance(body, WireModel):
            wire = body.to_wire()
        elif endpoint.request is not None:
            wire = endpoint.request.model_validate(dict(body or {})).to_wire()
        else:
            wire = dict(body or {})
        return self.send(endpoint, wire)

    def send(self, endpoint: Endpoint[R], wire: Mapping[str, Any]) -> R:
        """One request to ``endpoint`` with a body already in the API's form (a producer
        validated it, :mod:`outbox.core.wire` recognised it): nothing is checked again."""
        payload = self._request(endpoint.path, wire)
        try:
            return endpoint.answer.from_payload(payload)
        except ValidationError as exc:
            raise UnexpectedStatusError(
                f"{endpoint.path} answered with a body that does not parse as "
                f"{endpoint.answer.__name__}: {exc.error_count()} problem(s)",
                status_code=200,
                request_id=str(payload.get("request_id") or "") or None,
            ) from exc

    def request(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST any endpoint (e.g. ``"email/send"``) and return the whole JSON answer."""
        return self._request(path, body or {})
