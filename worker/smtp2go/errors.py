"""Every failure the SMTP2GO client reports, under one root.

The class says whether trying again can help, so the task's retry policy reads
``err.retryable`` (and ``retry_after`` / ``ambiguous``) instead of status codes::

    SMTP2GOError                      root: message, status_code, request_id, error_code,
    │                                 field_errors, retryable
    ├── TransportError                no HTTP answer (retryable); ``ambiguous``: the request may
    │   │                             have reached SMTP2GO, so a retry may send twice
    │   └── RequestTimeout            a connect/read/write/pool timeout
    └── APIError                      an HTTP answer that is not success
        ├── BadRequestError       400 the request is wrong; never retried
        ├── UnauthorizedError     401 bad or missing key
        ├── RequestFailedError    402 valid request the API could not carry out
        ├── ForbiddenError        403, or 400 with ENDPOINT_PERMISSION_DENIED
        ├── NotFoundError         404
        ├── RateLimitedError      429 (retryable); ``retry_after`` seconds when the API says
        ├── ServerError           5xx (retryable)
        └── UnexpectedStatusError any other status, or a success body that is not JSON

httpx exceptions are translated into these in exactly one place, the client's
``_request``; nothing else in the project catches httpx errors.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from worker.logs import API_KEY_PATTERN

__all__ = [
    "APIError",
    "BadRequestError",
    "ForbiddenError",
    "NotFoundError",
    "RateLimitedError",
    "RequestFailedError",
    "RequestTimeout",
    "SMTP2GOError",
    "ServerError",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedStatusError",
    "error_from_response",
    "parse_field_errors",
    "parse_retry_after",
    "redact",
]

#: ``error_code`` the API uses (on HTTP 400) when the key may not call the endpoint.
PERMISSION_DENIED = "ENDPOINT_PERMISSION_DENIED"
#: A reset header above this is an epoch timestamp, below it a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000
#: How much of a non-JSON body an error message quotes.
_BODY_EXCERPT = 200


def redact(text: str, *secrets: str) -> str:
    """``text`` without API keys (by their format) or any of ``secrets`` (verbatim)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "api-***")
    return API_KEY_PATTERN.sub("api-***", text)


def _rebuild(cls: type[SMTP2GOError], message: str, state: dict[str, Any]) -> SMTP2GOError:
    """Unpickle an error without calling ``__init__`` (its arguments are keyword-only)."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SMTP2GOError(Exception):
    """Root of every error the SMTP2GO client raises."""

    #: Whether the same request may succeed later; the task's retry policy reads it.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        error_code: str | None = None,
        field_errors: Mapping[str, str] | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        # Echoed by the server, so scrubbed like the message: no field may carry a key.
        self.request_id = redact(request_id) if request_id else request_id
        self.error_code = redact(error_code) if error_code else error_code
        self.field_errors: dict[str, str] = {
            redact(str(k)): redact(str(v)) for k, v in (field_errors or {}).items()
        }

    def __str__(self) -> str:
        details = []
        if self.status_code is not None:
            details.append(f"HTTP {self.status_code}")
        if self.error_code:
            details.append(self.error_code)
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        text = self.message
        if self.field_errors:
            text += " [" + "; ".join(f"{k}: {v}" for k, v in self.field_errors.items()) + "]"
        return f"{text} ({', '.join(details)})" if details else text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for a result record (never holds the key)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "error_code": self.error_code,
            "field_errors": dict(self.field_errors),
            "retryable": self.retryable,
        }


class TransportError(SMTP2GOError):
    """No HTTP answer came back: connection refused, reset, timed out, protocol broken."""

    retryable = True

    def __init__(self, message: str, *, ambiguous: bool) -> None:
        super().__init__(message)
        #: True when the request may have reached SMTP2GO (read/write timeout, connection
        #: dropped after sending); a retry may then deliver the message twice.
        self.ambiguous = ambiguous

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "ambiguous": self.ambiguous}


class RequestTimeout(TransportError):
    """A connect, read, write or pool timeout (named so as not to shadow the builtin)."""


class APIError(SMTP2GOError):
    """SMTP2GO answered with a status that is not success."""


class BadRequestError(APIError):
    """400: the request is invalid; sending it again cannot help."""


class UnauthorizedError(APIError):
    """401: the API key is missing, wrong or revoked."""


class RequestFailedError(APIError):
    """402: the parameters were valid but the request failed (e.g. account limits)."""


class ForbiddenError(APIError):
    """403, or 400 with ``ENDPOINT_PERMISSION_DENIED``: the key may not call this endpoint."""


class NotFoundError(APIError):
    """404: the endpoint or the named resource (template, webhook) does not exist."""


class RateLimitedError(APIError):
    """429: too many requests; wait ``retry_after`` seconds when the API gave a hint."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Seconds to wait from Retry-After or X-RateLimit-Reset; None when neither was sent
        #: (the API then holds the client IP for at least a minute).
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class ServerError(APIError):
    """5xx: a fault on SMTP2GO's side; worth another try later."""

    retryable = True


class UnexpectedStatusError(APIError):
    """A status the API does not document, or a success whose body is not a JSON object."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: RequestFailedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitedError,
}


def parse_field_errors(raw: Any) -> dict[str, str]:
    """Field errors in any shape the API uses, as ``{field: message}``.

    The real API sends one object ``{"fieldname": "to", "message": "..."}``; the
    reference describes ``{"to": "..."}``; a list of the former is accepted too.
    """
    if isinstance(raw, list):
        merged: dict[str, str] = {}
        for item in raw:
            merged.update(parse_field_errors(item))
        return merged
    if not isinstance(raw, Mapping):
        return {"": str(raw)} if raw else {}
    if "fieldname" in raw:
        return {str(raw["fieldname"]): str(raw.get("message", ""))}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait before the next request, from the answer's headers; None if unsaid.

    ``Retry-After`` (seconds or an HTTP-date) wins; else ``X-RateLimit-Reset``, read as
    an epoch timestamp when large and as seconds-until otherwise. Never negative.
    """
    clock = time.time() if now is None else now
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = _number(retry_after)
        if seconds is not None:
            return max(0.0, seconds)
        try:
            when = email.utils.parsedate_to_datetime(retry_after.strip())
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - clock)
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is not None:
        return max(0.0, reset - clock if reset >= _EPOCH_THRESHOLD else reset)
    return None


def error_from_response(
    response: httpx.Response, *, now: float | None = None, secrets: tuple[str, ...] = ()
) -> APIError:
    """The :class:`APIError` for a non-success answer; tolerant of any body.

    ``secrets`` (the client passes its key) are scrubbed from the text along with
    anything shaped like an API key, in case the server echoes them.
    """
    status = response.status_code
    request_id: str | None = None
    error_code: str | None = None
    field_errors: dict[str, str] = {}
    message = ""
    try:
        payload: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, Mapping):
        data = payload.get("data")
        data = data if isinstance(data, Mapping) else {}
        rid = payload.get("request_id", data.get("request_id"))
        request_id = str(rid) if rid else None
        code = data.get("error_code")
        error_code = str(code) if code else None
        message = str(data.get("error") or payload.get("error") or "")
        field_errors = parse_field_errors(data.get("field_validation_errors"))
    elif response.text.strip():
        message = response.text.strip()[:_BODY_EXCERPT]
    if not message:
        message = f"{status} {response.reason_phrase}".strip()
    message = redact(message, *secrets)
    field_errors = {redact(k, *secrets): redact(v, *secrets) for k, v in field_errors.items()}

    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id,
        "error_code": error_code,
        "field_errors": field_errors,
    }
    if status == 400 and error_code and error_code.endswith(PERMISSION_DENIED):
        return ForbiddenError(message, **kwargs)
    if status == 429:
        return RateLimitedError(
            message, retry_after=parse_retry_after(response.headers, now=now), **kwargs
        )
    if 500 <= status <= 599:
        return ServerError(message, **kwargs)
    return _BY_STATUS.get(status, UnexpectedStatusError)(message, **kwargs)
