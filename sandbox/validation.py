"""Request validation from the sandbox's own reading of the SMTP2GO v3 API.

Deliberately independent of the client's models: the sandbox is the test oracle, so a
field the client names wrongly must fail here rather than be mirrored. The rules follow
the provider's current API (see ``SMTP2GO-API.md``), not the older reference: ``to``,
``cc`` and ``bcc`` hold at most 100 each, custom headers at most 127 characters, inline
images carry no ``cid`` (the filename is the content id), SMS takes ``destination`` and
``content``. Unknown fields are ignored, as the real API does.

A bad field raises :class:`ApiError` whose ``field_validation_errors`` is the single
``{fieldname, message}`` object the real API answers with.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

__all__ = [
    "GENERIC_ERROR",
    "MAX_MESSAGE_BYTES",
    "NON_VALIDATING",
    "ApiError",
    "EmailDraft",
    "SmsDraft",
    "address",
    "invalid",
    "optional_str",
    "parse_datetime",
    "parse_email",
    "parse_mime",
    "parse_sms",
    "sms_units",
    "string_list",
]

NON_VALIDATING = "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"
GENERIC_ERROR = (
    "An error occurred processing the json data you sent with the request, please make sure "
    "the data conforms to the specification for this call (see the documentation) and try again."
)
#: The whole message as it would go out (bodies, headers, base64 attachments).
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
MAX_RECIPIENTS = 100
MAX_SUBJECT = 255
MAX_HEADER = 127
MAX_SCHEDULE_AHEAD = timedelta(days=3)
FORBIDDEN_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})

# Permissive on purpose (international domains, plus-addressing) but one address, with a
# dotted domain and nothing that could smuggle a second header or recipient.
_ADDRESS = re.compile(
    r'^[^\s@<>(),;:"\[\]\\]+@[^\s@<>(),;:"\[\]\\.]+(?:\.[^\s@<>(),;:"\[\]\\.]+)+$'
)
#: ``addr``, ``Name <addr>`` or ``"Name, Quoted" <addr>``.
_NAME_ADDR = re.compile(
    r'^\s*(?:(?:"(?:[^"\\]|\\.)*"|[^",;<>@()\\]*?)\s*<(?P<addr>[^<>\s]+)>|(?P<bare>[^<>\s,;]+))\s*$'
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 ftext)
_E164 = re.compile(r"^\+?[1-9]\d{6,14}$")
_MIME_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

_MIME_STANDARD_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "sender",
        "return-path",
        "received",
    }
)

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


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


def optional_str(body: dict[str, Any], name: str, *, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be a string")
    if max_len is not None and len(value) > max_len:
        raise invalid(name, f"{name} must be at most {max_len} characters")
    return value


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, f"{name} must be an array of strings")
    return list(value)


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
        if _ADDRESS.match(bare):
            return str(bare)
    pairs = getaddresses([value])
    if len(pairs) != 1 or not _ADDRESS.match(pairs[0][1]):
        raise invalid(name, f"{value!r} is not a valid email address")
    return pairs[0][1]


def _address_list(body: dict[str, Any], name: str, *, required: bool) -> list[str]:
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


# -- email/send ---------------------------------------------------------------------------


@dataclass(slots=True)
class EmailDraft:
    """A validated email, before templates, suppressions and ids are applied."""

    sender: str
    from_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    html_body: str | None
    text_body: str | None
    custom_headers: dict[str, str]
    size: int
    template_id: str | None = None
    template_data: dict[str, Any] | None = None
    attachments: list[str] = field(default_factory=list)
    inlines: list[str] = field(default_factory=list)
    schedule: datetime | None = None
    fastaccept: bool = False
    message_id: str | None = None

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc, *self.bcc]


def parse_email(
    body: dict[str, Any], *, templates: dict[str, Any], verified: frozenset[str] | None
) -> EmailDraft:
    """Validate one ``email/send`` object (also each item of ``email/batch``)."""
    sender_raw = body.get("sender")
    if sender_raw is None:
        raise invalid("sender", "sender is required")
    from_address = address(sender_raw, "sender")
    _check_verified(from_address, verified, "sender")
    to = _address_list(body, "to", required=True)
    cc = _address_list(body, "cc", required=False)
    bcc = _address_list(body, "bcc", required=False)

    template_id = optional_str(body, "template_id") or None
    if template_id is not None and template_id not in templates:
        raise invalid("template_id", f"template {template_id!r} does not exist")
    subject = optional_str(body, "subject")
    if subject is not None:
        _single_line(subject, "subject")
    if template_id is None:
        if not subject:
            raise invalid("subject", "subject is required unless template_id is given")
        if len(subject) > MAX_SUBJECT:
            raise invalid("subject", f"subject must be at most {MAX_SUBJECT} characters")
    html_body = optional_str(body, "html_body")
    text_body = optional_str(body, "text_body")
    if template_id is None and not html_body and not text_body:
        raise invalid("text_body", "one of html_body, text_body or template_id is required")

    template_data = _template_data(body.get("template_data"))
    headers = _custom_headers(body.get("custom_headers"))
    attachments, attachments_size = _files(body.get("attachments"), "attachments")
    inlines, inlines_size = _files(body.get("inlines"), "inlines")
    schedule = _schedule(body.get("schedule"))
    fastaccept = body.get("fastaccept", False)
    if not isinstance(fastaccept, bool):
        raise invalid("fastaccept", "fastaccept must be true or false")

    sizes = {
        "html_body": len(html_body or ""),
        "text_body": len(text_body or ""),
        "attachments": attachments_size,
        "inlines": inlines_size,
    }
    size = (
        sum(sizes.values()) + len(subject or "") + sum(len(k) + len(v) for k, v in headers.items())
    )
    if size > MAX_MESSAGE_BYTES:
        biggest = max(sizes, key=lambda k: sizes[k])
        raise invalid(biggest, f"the message is {size} bytes; at most {MAX_MESSAGE_BYTES}")
    return EmailDraft(
        sender=sender_raw,
        from_address=from_address,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject or "",
        html_body=html_body,
        text_body=text_body,
        custom_headers=headers,
        size=size,
        template_id=template_id,
        template_data=template_data,
        attachments=attachments,
        inlines=inlines,
        schedule=schedule,
        fastaccept=fastaccept,
        message_id=_header(headers, "message-id"),
    )


def _check_verified(from_address: str, verified: frozenset[str] | None, name: str) -> None:
    if verified is None:
        return
    domain = from_address.rpartition("@")[2].lower()
    if domain not in verified:
        raise invalid(name, f"sender domain {domain!r} is not verified on this account")


def _single_line(value: str, name: str) -> None:
    if "\r" in value or "\n" in value:
        raise invalid(name, f"{name} must not contain line breaks")


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _template_data(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # the API documents it as a JSON string; objects work too
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid("template_data", "template_data must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid("template_data", "template_data must be an object")
    return value


def _custom_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise invalid("custom_headers", "custom_headers must be an array of {header, value}")
    headers: dict[str, str] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise invalid("custom_headers", f"custom_headers[{i}] must be an object")
        name, text = item.get("header"), item.get("value")
        if not isinstance(name, str) or not isinstance(text, str):
            raise invalid("custom_headers", f"custom_headers[{i}] needs string header and value")
        if not _HEADER_NAME.match(name):
            raise invalid("custom_headers", f"custom_headers[{i}]: {name!r} is not a header name")
        if len(name) > MAX_HEADER or len(text) > MAX_HEADER:
            raise invalid(
                "custom_headers",
                f"custom_headers[{i}]: header and value at most {MAX_HEADER} chars",
            )
        if "\r" in text or "\n" in text:
            raise invalid("custom_headers", f"custom_headers[{i}]: value contains a line break")
        if name.lower() in FORBIDDEN_HEADERS:
            raise invalid("custom_headers", f"custom_headers[{i}]: {name} may not be set")
        headers[name] = text
    return headers


def _files(value: Any, name: str) -> tuple[list[str], int]:
    """Filenames and encoded size of ``attachments`` or ``inlines`` (fileblob xor url)."""
    if value is None:
        return [], 0
    if not isinstance(value, list):
        raise invalid(name, f"{name} must be an array of objects")
    names: list[str] = []
    size = 0
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise invalid(name, f"{where} must be an object")
        filename = item.get("filename")
        if not isinstance(filename, str) or not filename.strip():
            raise invalid(name, f"{where}.filename is required")
        if "\r" in filename or "\n" in filename:
            raise invalid(name, f"{where}.filename must not contain line breaks")
        mimetype = item.get("mimetype")
        if not isinstance(mimetype, str) or not _MIME_TYPE.match(mimetype):
            raise invalid(name, f"{where}.mimetype must be a MIME type such as image/png")
        blob, url = item.get("fileblob") or None, item.get("url") or None
        if (blob is None) == (url is None):
            raise invalid(name, f"{where} needs exactly one of fileblob or url")
        if blob is not None:
            if not isinstance(blob, str):
                raise invalid(name, f"{where}.fileblob must be a base64 string")
            compact = _WHITESPACE.sub("", blob)
            try:
                binascii.a2b_base64(compact, strict_mode=True)
            except (binascii.Error, ValueError):
                raise invalid(name, f"{where}.fileblob is not valid base64") from None
            size += len(compact)
        elif not isinstance(url, str) or not _URL.match(url):
            raise invalid(name, f"{where}.url must be an http(s) URL")
        names.append(filename)
    return names, size


def _schedule(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    when = parse_datetime(value, "schedule")
    now = datetime.now(UTC)
    if when <= now:
        raise invalid("schedule", "schedule must be in the future")
    if when - now > MAX_SCHEDULE_AHEAD:
        raise invalid("schedule", "schedule must be at most 3 days ahead")
    return when


# -- email/mime ---------------------------------------------------------------------------


def parse_mime(body: dict[str, Any], *, verified: frozenset[str] | None) -> EmailDraft:
    """Validate ``email/mime``: the message is read with the standard library's parser."""
    raw = body.get("mime_email")
    if not isinstance(raw, str) or not raw.strip():
        raise invalid("mime_email", "mime_email is required")
    text = _mime_text(raw)
    if len(text) > MAX_MESSAGE_BYTES:
        raise invalid(
            "mime_email", f"the message is {len(text)} bytes; at most {MAX_MESSAGE_BYTES}"
        )
    message = email.message_from_string(text, policy=email.policy.default)
    if not isinstance(message, EmailMessage):  # pragma: no cover - policy.default guarantees it
        raise invalid("mime_email", "mime_email is not a MIME message")
    senders = getaddresses([str(h) for h in message.get_all("from", [])])
    if len(senders) != 1 or not _ADDRESS.match(senders[0][1]):
        raise invalid("mime_email", "the message needs exactly one valid From address")
    from_address = senders[0][1]
    _check_verified(from_address, verified, "mime_email")
    lists: dict[str, list[str]] = {}
    for name in ("to", "cc", "bcc"):
        pairs = getaddresses([str(h) for h in message.get_all(name, [])])
        bad = [a for _, a in pairs if not _ADDRESS.match(a)]
        if bad:
            raise invalid("mime_email", f"{name.capitalize()} holds an invalid address: {bad[0]!r}")
        if len(pairs) > MAX_RECIPIENTS:
            raise invalid("mime_email", f"{name.capitalize()} holds more than {MAX_RECIPIENTS}")
        lists[name] = [a for _, a in pairs]
    if not any(lists.values()):
        raise invalid("mime_email", "the message has no recipients (To, Cc or Bcc)")
    subject = str(message.get("subject", ""))
    headers = {
        key: str(value)
        for key, value in message.items()
        if key.lower() not in _MIME_STANDARD_HEADERS
    }
    html_body, text_body, attachments, inlines = _mime_parts(message)
    schedule = _schedule(body.get("schedule"))
    fastaccept = body.get("fastaccept", False)
    if not isinstance(fastaccept, bool):
        raise invalid("fastaccept", "fastaccept must be true or false")
    message_id = message.get("message-id")
    return EmailDraft(
        sender=str(message.get("from")),
        from_address=from_address,
        to=lists["to"],
        cc=lists["cc"],
        bcc=lists["bcc"],
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        custom_headers=headers,
        size=len(text),
        attachments=attachments,
        inlines=inlines,
        schedule=schedule,
        fastaccept=fastaccept,
        message_id=str(message_id) if message_id else None,
    )


def _mime_text(raw: str) -> str:
    """The API documents ``mime_email`` as base64; a raw message is accepted as well."""
    first_line = raw.lstrip().split("\n", 1)[0]
    if ":" in first_line:
        return raw
    try:
        decoded = binascii.a2b_base64(_WHITESPACE.sub("", raw), strict_mode=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "mime_email", "mime_email is neither a MIME message nor base64 of one"
        ) from None
    text = decoded.decode("utf-8", errors="replace")
    if ":" not in text.lstrip().split("\n", 1)[0]:
        raise invalid("mime_email", "mime_email does not decode to a MIME message")
    return text


def _mime_parts(message: EmailMessage) -> tuple[str | None, str | None, list[str], list[str]]:
    html_body: str | None = None
    text_body: str | None = None
    attachments: list[str] = []
    inlines: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if filename or disposition == "attachment":
            (inlines if disposition == "inline" else attachments).append(filename or "")
            continue
        content_type = part.get_content_type()
        try:
            content = part.get_content()
        except (LookupError, ValueError):
            continue
        if not isinstance(content, str):
            continue
        if content_type == "text/plain" and text_body is None:
            text_body = content
        elif content_type == "text/html" and html_body is None:
            html_body = content
    return html_body, text_body, attachments, inlines


# -- sms/send -----------------------------------------------------------------------------


@dataclass(slots=True)
class SmsDraft:
    destination: list[str]
    content: str
    sender: str | None
    units: int


def parse_sms(body: dict[str, Any]) -> SmsDraft:
    """Validate ``sms/send``; the reference's ``{to, message}`` is refused, naming destination."""
    destination = body.get("destination")
    if destination is None:
        if "to" in body or "message" in body:
            raise invalid(
                "destination",
                "destination is required (sms/send takes destination and content, not to/message)",
            )
        raise invalid("destination", "destination is required")
    if not isinstance(destination, list) or not destination:
        raise invalid("destination", "destination must be a non-empty array of numbers")
    if len(destination) > MAX_RECIPIENTS:
        raise invalid("destination", f"at most {MAX_RECIPIENTS} numbers per request")
    for number in destination:
        if not isinstance(number, str) or not _E164.match(number):
            raise invalid("destination", f"{number!r} is not an E.164 number")
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise invalid("content", "content is required")
    sender = body.get("sender")
    if sender is not None and (not isinstance(sender, str) or not _E164.match(sender)):
        raise invalid("sender", "sender must be an E.164 number")
    return SmsDraft(list(destination), content, sender, sms_units(content))


def sms_units(content: str) -> int:
    """Billing units: 160 GSM-7 characters in one, 153 per part beyond; 70/67 for UCS-2."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in content):
        length = sum(2 if c in _GSM_EXTENDED else 1 for c in content)
        single, part = 160, 153
    else:
        length, single, part = len(content), 70, 67
    return 1 if length <= single else math.ceil(length / part)
