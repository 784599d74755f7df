"""Request validation from the sandbox's own reading of the SMTP2GO v3 API: the shared parts.

Deliberately independent of the client's models: the sandbox is the test oracle, so a
field the client names wrongly must fail here rather than be mirrored. The rules follow
the provider's current API (the OpenAPI 3.0.4 description, see ``SMTP2GO-API.md`` and
``docs/smtp2go-fidelity.md``), never stricter than it: what it accepts is accepted, what
it refuses is refused. Unknown fields are ignored, as the real API does. The endpoint
rules live beside this module: :mod:`~outbox.sandbox.email_rules` (``email/send`` and
``email/batch`` items), :mod:`~outbox.sandbox.mime_rules`, :mod:`~outbox.sandbox.sms_rules`.

A bad field raises :class:`ApiError` whose ``field_validation_errors`` is the single
``{fieldname, message}`` object the real API answers with.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

__all__ = [
    "ADDRESS",
    "GENERIC_ERROR",
    "MAX_MESSAGE_BYTES",
    "MAX_RECIPIENTS",
    "NON_VALIDATING",
    "URL",
    "WHITESPACE",
    "ApiError",
    "address",
    "address_list",
    "display_name",
    "invalid",
    "optional_str",
    "parse_datetime",
    "string_list",
]

NON_VALIDATING = "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"
GENERIC_ERROR = (
    "An error occurred processing the json data you sent with the request, please make sure "
    "the data conforms to the specification for this call (see the documentation) and try again."
)
#: The whole message as it would go out (bodies, headers, base64 attachments): "The
#: maximum email size when sending via the API is 50 MB" (getting-started page).
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
#: ``to``, ``cc`` and ``bcc`` hold "up to 100" each (OpenAPI 3.0.4, ``/email/send``).
MAX_RECIPIENTS = 100

# Permissive on purpose (international domains, plus-addressing) but one address, with a
# dotted domain and nothing that could smuggle a second header or recipient.
ADDRESS = re.compile(r'^[^\s@<>(),;:"\[\]\\]+@[^\s@<>(),;:"\[\]\\.]+(?:\.[^\s@<>(),;:"\[\]\\.]+)+$')
#: ``addr``, ``Name <addr>`` or ``"Name, Quoted" <addr>``.
_NAME_ADDR = re.compile(
    r'^\s*(?:(?:"(?:[^"\\]|\\.)*"|[^",;<>@()\\]*?)\s*<(?P<addr>[^<>\s]+)>|(?P<bare>[^<>\s,;]+))\s*$'
)
URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
WHITESPACE = re.compile(r"\s+")


class ApiError(Exception):
    """An answer in the API's error shape: error, error_code and field_validation_errors."""

    def __init__(
        self,
        status: int,
        error: str,
        error_code: str,
        *,
        field: str | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.error_code = error_code
        self.field = field
        self.message = message

    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"error": self.error, "error_code": self.error_code}
        if self.field is not None:
            data["field_validation_errors"] = {
                "fieldname": self.field,
                "message": self.message or self.error,
            }
        return data


def invalid(field: str, message: str) -> ApiError:
    """A 400 naming one field, as the real API reports a payload that does not validate."""
    return ApiError(400, GENERIC_ERROR, NON_VALIDATING, field=field, message=message)


# -- small field readers ------------------------------------------------------------------


def optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string")
    return value


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, f"{name} must be an array of strings")
    return list(value)


def display_name(value: str) -> str:
    """The display name of ``Name <addr>`` (``""`` for a bare address)."""
    return parseaddr(value)[0]


def address(value: Any, name: str) -> str:
    """The bare address of ``addr@host`` or ``Name <addr@host>``; one address only."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, f"{name} must be an email address")
    if "\r" in value or "\n" in value:
        raise invalid(name, f"{name} must not contain line breaks: {value!r}")
    # The common shapes by regex: the stdlib parser costs ~60 us an address, which is most
    # of a send's time; it still settles anything unusual.
    match = _NAME_ADDR.match(value)
    if match is not None:
        bare = match["addr"] or match["bare"]
        if ADDRESS.match(bare):
            return str(bare)
    pairs = getaddresses([value])
    if len(pairs) != 1 or not ADDRESS.match(pairs[0][1]):
        raise invalid(name, f"{value!r} is not a valid email address")
    return pairs[0][1]


def address_list(body: dict[str, Any], name: str, *, required: bool) -> list[str]:
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(name, f"{name} is required")
        return []
    if not isinstance(value, list):
        raise invalid(name, f"{name} must be an array of email addresses")
    if required and not value:
        raise invalid(name, f"{name} must hold at least one address")
    if len(value) > MAX_RECIPIENTS:
        raise invalid(name, f"{name} holds {len(value)} addresses; at most {MAX_RECIPIENTS}")
    return [address(item, name) for item in value]


def parse_datetime(value: Any, name: str) -> datetime:
    """The formats the API documents: ISO 8601 / RFC 3339 and RFC 1123 / 822; naive is UTC."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, f"{name} must be a date and time")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise invalid(name, f"{value!r} is not a date and time the API understands") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
