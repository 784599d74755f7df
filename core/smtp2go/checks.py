"""The checks the payload models are built from, one rule each: addresses, numbers,
header text, files, and how a validation error names its fields.

Producers refuse with them what can only be a mistake (a line break in a header, an
address that is not one), never what the API accepts.
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from functools import lru_cache
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "E164",
    "FORBIDDEN_HEADERS",
    "MAX_ACTIVITY_LIMIT",
    "MAX_EMAIL_REQUEST_BYTES",
    "MAX_HEADER_LINE",
    "MAX_RECIPIENTS",
    "MAX_REQUEST_BYTES",
    "MAX_SUBJECT_CHARS",
    "RECIPIENTS_ROOM",
    "EmailAddress",
    "address_key",
    "base64_size",
    "check_e164",
    "field_errors_of",
    "file_too_large",
    "megabytes",
    "request_limit",
    "too_large",
    "validate_address",
    "validate_domain_or_address",
]

#: Recipients per field (``to``, ``cc`` and ``bcc`` each) in one API call.
MAX_RECIPIENTS = 100
#: Request bodies the service takes, counted as the bytes sent (the JSON with its files
#: base64-encoded): 50 MB for ``/email/*``, 1 MB for every other endpoint (developer
#: changelog, 2026-06-11). Decimal megabytes, the stricter reading of "MB".
MAX_EMAIL_REQUEST_BYTES = 50_000_000
MAX_REQUEST_BYTES = 1_000_000
#: Room a producer keeps for a chunk's recipients: it checks the message once, before it
#: knows the longest chunk (100 each of to, cc and bcc, at most 254 characters, quoted).
RECIPIENTS_ROOM = 3 * MAX_RECIPIENTS * 257
MAX_SUBJECT_CHARS = 255
#: A custom header's line, ``Name: value``: RFC 5322's limit (section 2.1.1). The 127
#: characters of the 2017 docs are not in the current OpenAPI, and a long
#: ``List-Unsubscribe`` (RFC 8058 one-click) must go as given.
MAX_HEADER_LINE = 998
#: Most events one ``activity/search`` call returns.
MAX_ACTIVITY_LIMIT = 1000
#: Headers the API refuses in ``custom_headers`` (compared case-insensitively).
FORBIDDEN_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})

_LINE_BREAKS = re.compile(r"[\r\n\x00]")
#: RFC 5322 field name: printable ASCII except the colon.
FIELD_NAME = re.compile(r"[!-9;-~]+")
#: An address whose local part is an ASCII dot-atom (RFC 5322), the shape of nearly all.
_SIMPLE_ADDR = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[^@\s]+)"
)
_ANGLE_ADDR = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>\s]+)>")
#: A display name the stdlib parser would read as it is written: no quotes, comments,
#: separators or address characters (``Shop``, ``Ann Smith``).
_PLAIN_NAME = re.compile(r"[^\"(),.:;<>@\[\]\\]*")
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_HTTP_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
WHITESPACE = re.compile(r"\s+")


def _no_line_breaks(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("must not contain CR, LF or NUL characters")
    return value


def request_limit(path: str) -> int:
    """The most bytes a request body to ``path`` (``"email/send"``) may have."""
    return MAX_EMAIL_REQUEST_BYTES if path.startswith("email/") else MAX_REQUEST_BYTES


def megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def too_large(path: str, size: int, part: str, part_size: int) -> str:
    """Why a request is refused for its size, in the megabytes a person counts."""
    return (
        f"the request would be {megabytes(size)}, over the {megabytes(request_limit(path))} "
        f"SMTP2GO takes for /{path}, counted as sent (files base64-encoded, a third larger "
        f"than on disk); {part} is {megabytes(part_size)} of it"
    )


def base64_size(n: int) -> int:
    """What ``n`` bytes become in base64, as a file travels in a request (a third more)."""
    return 4 * -(-n // 3)


def file_too_large(path: str, size: int, name: str, raw: int, room: int) -> str:
    """Why a request is refused for a file it carries: the file's own size (as a person
    counts it, on disk) and its base64, the request's, and how large the file may be with
    the rest of the message (``room``: the base64 bytes left for it)."""
    fits = max(room, 0) // 4 * 3
    return (
        f"{name} is {megabytes(raw)} ({megabytes(base64_size(raw))} base64-encoded, as it "
        f"is sent): the request would be {megabytes(size)}, over the "
        f"{megabytes(request_limit(path))} SMTP2GO takes for /{path}; with the rest of "
        f"the message this file can be at most {fits // 100_000 / 10:.1f} MB"
    )


def validate_address(value: str) -> str:
    """Accept ``addr@host`` or ``Name <addr@host>``; return it stripped.

    Refuses CR/LF (header injection), several addresses in one string and anything
    whose address part ``email_validator`` rejects (syntax only, no DNS).
    """
    _no_line_breaks(value)
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    plain = _SIMPLE_ADDR.fullmatch(text)
    if plain and _plain_ok(plain, text):
        return text
    if "<" in text or ">" in text:
        match = _ANGLE_ADDR.fullmatch(text)
        if match is None:
            raise ValueError(f"not an address of the form 'Name <addr@host>': {text!r}")
        expected = match["addr"]
        inner = _SIMPLE_ADDR.fullmatch(expected)
        if inner and _PLAIN_NAME.fullmatch(match["name"]) and _plain_ok(inner, text):
            return text
    else:
        if WHITESPACE.search(text):
            raise ValueError(f"not an email address: {text!r}")
        expected = text
    if len(getaddresses([text])) != 1:
        raise ValueError(f"must be a single address: {text!r}")
    _, addr = parseaddr(text)
    if not addr or addr != expected:
        raise ValueError(f"not an email address: {text!r}")
    try:
        validate_email(addr, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid address {addr!r}: {exc}") from None
    return text


def _plain_ok(plain: re.Match[str], text: str) -> bool:
    """The common case, without the stdlib parser (~30 us an address): an ASCII
    dot-atom local part needs no more checking, and each domain's verdict is cached (a
    10,000-recipient list has few domains)."""
    if len(plain["local"]) > 64 or len(text) > 254:
        return False
    try:
        _check_domain(plain["domain"].lower())
    except EmailNotValidError as exc:
        raise ValueError(f"invalid address {text!r}: {exc}") from None
    return True


@lru_cache(maxsize=4096)
def _check_domain(domain: str) -> None:
    """``email_validator``'s domain rules (syntax, special-use names), once per domain."""
    validate_email(f"x@{domain}", check_deliverability=False)


def address_key(address: str) -> str:
    """The comparable part of an address: ``"Ann <A@X.com>"`` -> ``"a@x.com"``.

    One rule for every comparison of recipients: de-duplication across to/cc/bcc, the
    local suppression set, and webhook events.
    """
    if "<" not in address and '"' not in address and "(" not in address:
        return address.strip().lower()  # a bare address: skip the stdlib parser
    return (parseaddr(address)[1] or address).strip().lower()


def validate_domain_or_address(value: str) -> str:
    """An address (for one recipient) or a bare domain (for all of its addresses)."""
    _no_line_breaks(value)
    text = value.strip()
    if "@" in text:
        return validate_address(text)
    if not _DOMAIN.fullmatch(text):
        raise ValueError(f"neither an email address nor a domain: {text!r}")
    return text


def check_e164(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError(f"not an E.164 phone number ('+' then 7 to 15 digits): {value!r}")
    return value


def check_mimetype(value: str) -> str:
    # Empty only when there is no filename to guess from, which is reported on its own.
    if value and not _MIME_TYPE.fullmatch(value):
        raise ValueError(f"not a MIME type such as image/png: {value!r}")
    return value


def _http_url(value: str) -> str:
    if not _HTTP_URL.fullmatch(value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _aware(value: datetime) -> datetime:
    """Naive datetimes are read as UTC, the API's own time zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ValueError("is nested too deeply to be JSON") from None
    return value


def with_mimetype(data: Any) -> Any:
    """Fill a missing ``mimetype`` from the filename, as mail clients do."""
    if isinstance(data, Mapping) and not data.get("mimetype") and data.get("filename"):
        guessed, _ = mimetypes.guess_type(str(data["filename"]), strict=False)
        return {**data, "mimetype": guessed or "application/octet-stream"}
    return data


def looks_like_mime(text: str) -> bool:
    """A MIME message starts with a header line; base64 never holds a colon."""
    return ":" in text.lstrip().split("\n", 1)[0]


def as_list(value: Any) -> Any:
    """A single string where a list is expected is the list of that one string."""
    return [value] if isinstance(value, str) else value


#: An ``addr@host`` or ``Name <addr@host>`` string, checked by :func:`validate_address`.
EmailAddress = Annotated[str, AfterValidator(validate_address)]
#: A phone number in E.164 form, e.g. ``+61400000000``.
E164 = Annotated[str, AfterValidator(check_e164)]
HeaderText = Annotated[str, AfterValidator(_no_line_breaks)]
Subject = Annotated[str, Field(max_length=MAX_SUBJECT_CHARS), AfterValidator(_no_line_breaks)]
HttpURL = Annotated[str, AfterValidator(_http_url)]
Schedule = Annotated[datetime, AfterValidator(_aware)]


def fail(title: str, problems: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    """Raise one ValidationError naming every cross-field problem at its own field."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("value_error", message), loc=loc, input=value
                )
                for loc, message, value in problems
            ],
        )


def field_errors_of(exc: ValidationError) -> dict[str, str]:
    """Every bad field of ``exc`` as ``{"to.3": "message", "attachments.0.fileblob": ...}``.

    Problems with no single field (the total size) are keyed ``__root__``.
    """
    result: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "__root__"
        message = error["msg"].removeprefix("Value error, ")
        result[key] = f"{result[key]}; {message}" if key in result else message
    return result
