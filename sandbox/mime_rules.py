"""Validating ``email/mime``: the message is read with the standard library's parser.

The API documents ``mime_email`` as the base64 of a whole MIME message; a raw message is
accepted as well. The recipients are the addresses in its To, Cc and Bcc headers (each
at most 100, each address once); a send needs exactly one From address.
"""

from __future__ import annotations

import binascii
import email
import email.policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from outbox.sandbox.email_rules import EmailDraft, parse_schedule
from outbox.sandbox.validation import (
    ADDRESS,
    MAX_MESSAGE_BYTES,
    MAX_RECIPIENTS,
    WHITESPACE,
    invalid,
)

__all__ = ["parse_mime"]

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


def parse_mime(body: dict[str, Any]) -> EmailDraft:
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
    if len(senders) != 1 or not ADDRESS.match(senders[0][1]):
        raise invalid("mime_email", "the message needs exactly one valid From address")
    from_address = senders[0][1]
    lists: dict[str, list[str]] = {}
    for name in ("to", "cc", "bcc"):
        pairs = getaddresses([str(h) for h in message.get_all(name, [])])
        bad = [a for _, a in pairs if not ADDRESS.match(a)]
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
    html_body, text_body, files = _mime_parts(message)
    schedule = parse_schedule(body.get("schedule"))
    fastaccept = body.get("fastaccept", False)
    if not isinstance(fastaccept, bool):
        raise invalid("fastaccept", "fastaccept must be true or false")
    message_id = message.get("message-id")
    return EmailDraft(
        sender=str(message.get("from")),
        from_address=from_address,
        from_name=senders[0][0],
        to=lists["to"],
        cc=lists["cc"],
        bcc=lists["bcc"],
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        custom_headers=headers,
        size=len(text),
        attachments=[f for f, _, inline in files if not inline],
        attachment_mimetypes=[t for _, t, inline in files if not inline],
        inlines=[f for f, _, inline in files if inline],
        inline_mimetypes=[t for _, t, inline in files if inline],
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
        decoded = binascii.a2b_base64(WHITESPACE.sub("", raw), strict_mode=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "mime_email", "mime_email is neither a MIME message nor base64 of one"
        ) from None
    text = decoded.decode("utf-8", errors="replace")
    if ":" not in text.lstrip().split("\n", 1)[0]:
        raise invalid("mime_email", "mime_email does not decode to a MIME message")
    return text


def _mime_parts(
    message: EmailMessage,
) -> tuple[str | None, str | None, list[tuple[str, str, bool]]]:
    """The first text and HTML bodies, and ``(filename, type, inline)`` of each file."""
    html_body: str | None = None
    text_body: str | None = None
    files: list[tuple[str, str, bool]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if filename or disposition == "attachment":
            files.append((filename or "", part.get_content_type(), disposition == "inline"))
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
    return html_body, text_body, files
