"""Validating ``email/send`` (and each item of ``email/batch``) as the OpenAPI 3.0.4 has it.

What the API requires of ``/email/send`` is ``sender`` and ``to`` (``required: [sender,
to]``), with ``html_body`` or ``text_body`` unless ``template_id`` is given. So:

* ``subject`` may be left out (it is ignored when ``template_id`` is set); an
  ``email/batch`` item still needs it, since there ``required: [sender, to, subject]``.
* An attachment or inline needs only ``filename`` (``required: [filename]``) and one of
  ``fileblob`` / ``url``; a missing ``mimetype`` is inferred from the filename.
* An address given twice (in ``to`` and ``cc``, say) is one recipient.

Whether the sender is verified is not a validation question: the real API answers 200
with a failure (see :mod:`~outbox.sandbox.sending`).
"""

from __future__ import annotations

import binascii
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from outbox.sandbox.validation import (
    MAX_MESSAGE_BYTES,
    URL,
    WHITESPACE,
    address,
    address_list,
    display_name,
    invalid,
    optional_str,
    parse_datetime,
)

__all__ = [
    "FORBIDDEN_HEADERS",
    "MAX_HEADER_LINE",
    "MAX_SUBJECT",
    "EmailDraft",
    "distinct",
    "infer_mimetype",
    "parse_email",
    "parse_schedule",
]

MAX_SUBJECT = 255
#: A custom header's line, ``Name: value``. The current OpenAPI (3.0.4) sets no length;
#: the 127 characters of the 2017 docs are gone, so the line limit of RFC 5322 (2.1.1)
#: is what can be relied on.
MAX_HEADER_LINE = 998
MAX_SCHEDULE_AHEAD = timedelta(days=3)
FORBIDDEN_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})
#: What an attachment without a recognisable extension is sent as.
DEFAULT_MIMETYPE = "application/octet-stream"

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 ftext)
_MIME_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


@dataclass(slots=True)
class EmailDraft:
    """A validated email, before templates, suppressions and ids are applied."""

    sender: str
    from_address: str
    from_name: str
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
    attachment_mimetypes: list[str] = field(default_factory=list)
    inlines: list[str] = field(default_factory=list)
    inline_mimetypes: list[str] = field(default_factory=list)
    schedule: datetime | None = None
    fastaccept: bool = False
    message_id: str | None = None

    @property
    def recipients(self) -> list[str]:
        """Every address once, in the order to, cc, bcc (compared without case)."""
        return distinct([*self.to, *self.cc, *self.bcc])


def distinct(addresses: list[str]) -> list[str]:
    """``addresses`` without repeats (the first spelling of each is kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for item in addresses:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def infer_mimetype(filename: str) -> str:
    """The type of a file from its name, as the API is left to do without ``mimetype``."""
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or DEFAULT_MIMETYPE


def parse_email(
    body: dict[str, Any], *, templates: dict[str, Any], require_subject: bool = False
) -> EmailDraft:
    """Validate one ``email/send`` object; ``require_subject`` for an ``email/batch`` item."""
    sender_raw = body.get("sender")
    if sender_raw is None:
        raise invalid("sender", "sender is required")
    from_address = address(sender_raw, "sender")
    to = address_list(body, "to", required=True)
    cc = address_list(body, "cc", required=False)
    bcc = address_list(body, "bcc", required=False)

    template_id = optional_str(body, "template_id") or None
    if template_id is not None and template_id not in templates:
        raise invalid("template_id", f"template {template_id!r} does not exist")
    subject = optional_str(body, "subject")
    if subject is not None:
        _single_line(subject, "subject")
    if require_subject and subject is None:
        raise invalid("subject", "subject is required in each email of a batch")
    if template_id is None and subject is not None and len(subject) > MAX_SUBJECT:
        raise invalid("subject", f"subject must be at most {MAX_SUBJECT} characters")
    html_body = optional_str(body, "html_body")
    text_body = optional_str(body, "text_body")
    if template_id is None and not html_body and not text_body:
        raise invalid("text_body", "one of html_body, text_body or template_id is required")

    template_data = _template_data(body.get("template_data"))
    headers = _custom_headers(body.get("custom_headers"))
    attachments, attachment_types, attachments_size = _files(body.get("attachments"), "attachments")
    inlines, inline_types, inlines_size = _files(body.get("inlines"), "inlines")
    schedule = parse_schedule(body.get("schedule"))
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
        from_name=display_name(sender_raw),
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
        attachment_mimetypes=attachment_types,
        inlines=inlines,
        inline_mimetypes=inline_types,
        schedule=schedule,
        fastaccept=fastaccept,
        message_id=_header(headers, "message-id"),
    )


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
        if len(name) + 2 + len(text) > MAX_HEADER_LINE:
            raise invalid(
                "custom_headers",
                f"custom_headers[{i}]: the header line is over {MAX_HEADER_LINE} characters",
            )
        if "\r" in text or "\n" in text:
            raise invalid("custom_headers", f"custom_headers[{i}]: value contains a line break")
        if name.lower() in FORBIDDEN_HEADERS:
            raise invalid("custom_headers", f"custom_headers[{i}]: {name} may not be set")
        headers[name] = text
    return headers


def _files(value: Any, name: str) -> tuple[list[str], list[str], int]:
    """Filenames, MIME types and encoded size of ``attachments`` or ``inlines``.

    Each item needs a ``filename`` and a ``fileblob`` or a ``url`` ("Required if no url /
    fileblob is specified"); given both, the blob is what is sent.
    """
    if value is None:
        return [], [], 0
    if not isinstance(value, list):
        raise invalid(name, f"{name} must be an array of objects")
    names: list[str] = []
    types: list[str] = []
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
        if mimetype is None or mimetype == "":
            mimetype = infer_mimetype(filename)
        elif not isinstance(mimetype, str) or not _MIME_TYPE.match(mimetype):
            raise invalid(name, f"{where}.mimetype must be a MIME type such as image/png")
        blob, url = item.get("fileblob") or None, item.get("url") or None
        if blob is None and url is None:
            raise invalid(name, f"{where} needs a fileblob or a url")
        if blob is not None:
            if not isinstance(blob, str):
                raise invalid(name, f"{where}.fileblob must be a base64 string")
            compact = WHITESPACE.sub("", blob)
            try:
                binascii.a2b_base64(compact, strict_mode=True)
            except (binascii.Error, ValueError):
                raise invalid(name, f"{where}.fileblob is not valid base64") from None
            size += len(compact)
        elif not isinstance(url, str) or not URL.match(url):
            raise invalid(name, f"{where}.url must be an http(s) URL")
        names.append(filename)
        types.append(mimetype)
    return names, types, size


def parse_schedule(value: Any) -> datetime | None:
    """``schedule``: "Must be in the future and within the next 3 days" (OpenAPI 3.0.4)."""
    if value is None or value == "":
        return None
    when = parse_datetime(value, "schedule")
    now = datetime.now(UTC)
    if when <= now:
        raise invalid("schedule", "schedule must be in the future")
    if when - now > MAX_SCHEDULE_AHEAD:
        raise invalid("schedule", "schedule must be at most 3 days ahead")
    return when
