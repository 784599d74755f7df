"""Everything outbox raises, under one root, so an application can catch it in one place::

    OutboxError                         root of every error outbox raises
    ├── ValidationError (ValueError)    bad input to a producer; ``errors`` names each field;
    │                                   nothing was recorded or enqueued
    ├── EnqueueError                    nothing was recorded (Redis unreachable): nothing
    │                                   will be sent; calling again is safe
    ├── RecordNotFound (LookupError)    no record with that id (never made, or expired)
    ├── RecipientsRefused               every recipient of a Django message is suppressed:
    │                                   nothing will be sent; ``handle_id`` names the record
    ├── ConfigurationError (ValueError) a setting makes the call impossible (no API key, ...)
    ├── Throttled                       a shared limit has no slot yet; try after ``wait`` s
    └── SMTP2GOError                    the API refused a request or could not be reached;
        │                               ``retryable`` says whether trying again can help
        ├── TransportError              no HTTP answer (retryable); ``ambiguous``: the request
        │   │                           may have reached SMTP2GO, so a resend may duplicate
        │   └── RequestTimeout          a connect/read/write/pool timeout
        └── APIError                    an HTTP answer that is not success
            ├── BadRequestError     400 the request is wrong; never retried
            ├── AccountError            the account, not the message: the fleet holds
            │   ├── UnauthorizedError   401 bad, missing or revoked key
            │   └── ForbiddenError      403, or 400 with ENDPOINT_PERMISSION_DENIED
            ├── RequestFailedError  402 a valid request the API could not carry out
            ├── NotFoundError       404
            ├── RateLimitedError    429 (retryable); ``retry_after`` when the API says
            ├── ServerError         5xx (retryable)
            └── UnexpectedStatusError any other status, or a success body that is not JSON

The class says what a caller can do, so retry policy reads ``err.retryable`` (and
``retry_after`` / ``ambiguous``), never status codes. httpx exceptions become these in
exactly one place, the SMTP2GO client. No message, field or ``repr`` of these errors
ever holds an API key: they are scrubbed on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "API_KEY_PATTERN",
    "APIError",
    "AccountError",
    "BadRequestError",
    "ConfigurationError",
    "EnqueueError",
    "ForbiddenError",
    "NotFoundError",
    "OutboxError",
    "RateLimitedError",
    "RecipientsRefused",
    "RecordNotFound",
    "RequestFailedError",
    "RequestTimeout",
    "SMTP2GOError",
    "ServerError",
    "Throttled",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedStatusError",
    "ValidationError",
    "redact",
]

#: An SMTP2GO API key: ``api-`` and 32 letters or digits.
API_KEY_PATTERN = re.compile(r"api-[A-Za-z0-9]{32}")
_KEY_MASK = "api-***"


def redact(text: str, *secrets: str) -> str:
    """``text`` without API keys (by their format) or any of ``secrets`` (verbatim)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _KEY_MASK)
    return API_KEY_PATTERN.sub(_KEY_MASK, text)


class OutboxError(Exception):
    """Root of every error outbox raises."""


class ValidationError(OutboxError, ValueError):
    """Bad input: ``errors`` maps each bad field (``to.3``, ``subject``) to what is wrong."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{name}: {message}" for name, message in self.errors.items())
        super().__init__(f"invalid message: {detail}")


class EnqueueError(OutboxError):
    """Nothing was recorded, so nothing will be sent: Redis could not be reached.

    Raised only when no record exists; once the record is written the send returns its
    handle even if the broker is down (the record is the outbox, and it is published
    later). Calling again is safe, with or without an idempotency key. In the rare case
    Redis failed in the middle of the write and could not be asked afterwards,
    ``recorded`` is ``None`` instead of ``False``: the send may have been recorded (and
    then goes); an idempotency key makes calling again safe.
    """

    def __init__(self, message: str, *, recorded: bool | None = False) -> None:
        super().__init__(message)
        self.recorded = recorded


class RecordNotFound(OutboxError, LookupError):
    """No record with that id (never created, or expired after the retention)."""


class IdempotencyConflict(OutboxError, ValueError):
    """An idempotency key came back with a different message than the one it first sent
    (Stripe's rule): nothing is sent; ``first`` is the id of the send the key belongs
    to. The same message with the same key returns the first handle instead."""

    def __init__(self, key: str, first: str) -> None:
        super().__init__(
            f"idempotency_key {key!r} was used for a different message (send {first}); "
            "use a key that names this message, or none"
        )
        self.key = key
        self.first = first


class Unavailable(OutboxError, ConnectionError):
    """Redis (outbox's records) could not be reached, so the call could not answer."""


class RecipientsRefused(OutboxError):
    """Every recipient of a message is on the suppression list, so nothing will be sent.

    Raised by the Django backend, as Django's SMTP backend raises
    ``SMTPRecipientsRefused`` when the server refuses them all; the producers themselves
    return the handle, whose ``rejected`` lists them.
    """

    def __init__(self, handle_id: str, rejected: tuple[str, ...]) -> None:
        super().__init__(f"every recipient is suppressed: {', '.join(rejected)} (send {handle_id})")
        self.handle_id = handle_id
        self.rejected = rejected


class ConfigurationError(OutboxError, ValueError):
    """A setting makes the call impossible (no API key for a request, a bad URL, ...)."""


class Throttled(OutboxError):
    """A shared limit (or a cool-down) has no slot now; try again after ``wait`` seconds."""

    def __init__(self, what: str, wait: float) -> None:
        super().__init__(f"{what}: next slot in {wait:.3f}s")
        self.wait = wait


def _rebuild(cls: type[SMTP2GOError], message: str, state: dict[str, Any]) -> SMTP2GOError:
    """Unpickle an error without calling ``__init__`` (its arguments are keyword-only)."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SMTP2GOError(OutboxError):
    """Root of every error the SMTP2GO client raises."""

    #: Whether the same request may succeed later; the retry policy reads it.
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


class AccountError(APIError):
    """The account cannot send (a bad key, a missing permission): no message's fault.

    The fleet holds every send until the key works again instead of failing messages.
    """


class UnauthorizedError(AccountError):
    """401: the API key is missing, wrong or revoked."""


class ForbiddenError(AccountError):
    """403, or 400 with ``ENDPOINT_PERMISSION_DENIED``: the key may not call this endpoint."""


class RequestFailedError(APIError):
    """402: the parameters were valid but the request failed (e.g. account limits)."""


class NotFoundError(APIError):
    """404: the endpoint or the named resource (template, webhook) does not exist."""


class RateLimitedError(APIError):
    """429: too many requests; wait ``retry_after`` seconds when the API gave a hint.

    The real service gives none: it times the client's IP out for at least a minute.
    """

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Seconds to wait from Retry-After or X-RateLimit-Reset; None when neither was sent.
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class ServerError(APIError):
    """5xx: a fault on SMTP2GO's side; worth another try later."""

    retryable = True


class UnexpectedStatusError(APIError):
    """A status the API does not document, or a success whose body is not a JSON object."""
