"""Reading an SMTP2GO answer that is not a success into the error it means.

The error classes live in :mod:`outbox.core.errors`; this is the one place an HTTP answer
becomes one of them (the client calls it for every non-success status).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from outbox.core.errors import (
    APIError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RequestFailedError,
    ServerError,
    UnauthorizedError,
    UnexpectedStatusError,
    redact,
)

__all__ = ["PERMISSION_DENIED", "error_from_response", "parse_field_errors", "parse_retry_after"]

#: ``error_code`` the API uses (on HTTP 400) when the key may not call the endpoint.
PERMISSION_DENIED = "ENDPOINT_PERMISSION_DENIED"
#: A reset header above this is an epoch timestamp, below it a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000
#: How much of a non-JSON body an error message quotes.
_BODY_EXCERPT = 200


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
