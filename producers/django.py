"""Django's email API through outbox: ``EMAIL_BACKEND = "outbox.django.EmailBackend"``.

``send_mail``, ``EmailMessage.send()`` and ``EmailMultiAlternatives`` queue each message
with one :func:`outbox.send_email` call (:func:`outbox.send_template` when it names a
``template_id``), or, when the API's JSON fields cannot say what the message says, one
:func:`outbox.send_mime` call carrying the message Django builds itself. Each message
keeps its handle as ``message.outbox_handle`` (``None`` when nothing was recorded), so
the app can read its record: ``message.outbox_handle.status().state``. With
``"outbox.django"`` in ``INSTALLED_APPS``, ``manage.py check`` names the sender settings
outbox would refuse (:func:`check_settings`).

================================  ===========================================================
Django                            outbox
================================  ===========================================================
from_email (a ``From`` header     sender
wins, as in Django's message)
to, cc, bcc                       to, cc, bcc (lists over 100 are split into chunks)
subject, body (plain or html)     subject, text_body or html_body
alternatives                      the first text/plain and text/html: text_body, html_body
reply_to                          reply_to (one address) or a ``Reply-To`` header (several)
extra_headers                     custom_headers (a ``Reply-To`` header replaces reply_to)
attachments                       attachments (base64; the MIME type kept)
a MIME part with a Content-ID     inlines, named by the Content-ID (``<img src="cid:ID">``)
================================  ===========================================================

django-anymail's attributes, set on any message, where SMTP2GO has something for them
(its send API has no tags or metadata, so they travel as headers, which SMTP2GO's webhooks
can return with each event):

- ``tags``: one ``X-Tag`` header, the tags joined by ", ";
- ``metadata``: an ``X-Metadata-<key>`` header for each key (Symfony Mailer's names);
- ``template_id`` and ``merge_global_data``: :func:`~outbox.send_template` and its data;
- ``send_at``: a naive datetime (or a date, at midnight) is in Django's current time zone;
- ``esp_extra``: the producers' keyword options, ``idempotency_key``, ``send_at`` and
  ``callback``;
- ``merge_data``, ``merge_metadata``, ``merge_headers``, ``envelope_sender``,
  ``track_clicks``, ``track_opens``: refused (no such fields in SMTP2GO's send API).

Sent whole, as MIME: a body or alternative other than one text/plain and one text/html
(a text/calendar invitation), no body at all, an attachment without a file name, an
inline part without a Content-ID, a multipart attachment, a header line over RFC 5322's
998 characters. Such a message may not have Bcc recipients (``email/mime`` reads recipients
from the headers and does not document removing a Bcc header before delivery) nor more
than 100 To or Cc addresses (a MIME message is not split).
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from email.generator import BytesGenerator
from email.message import Message
from typing import Any, NamedTuple

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.utils import timezone
from django.utils.encoding import force_str

from outbox.core.errors import OutboxError, RecipientsRefused, ValidationError
from outbox.core.smtp2go.checks import (
    FIELD_NAME,
    FORBIDDEN_HEADERS,
    MAX_HEADER_LINE,
    MAX_RECIPIENTS,
    validate_address,
)
from outbox.handle import Handle
from outbox.send import send_email, send_mime, send_template

__all__ = [
    "METADATA_PREFIX",
    "OPTIONS",
    "TAG_HEADER",
    "EmailBackend",
    "check_settings",
    "send_message",
]

logger = logging.getLogger(__name__)

#: The ``esp_extra`` keys: the keyword options every producer takes.
OPTIONS = ("idempotency_key", "send_at", "callback")
#: django-anymail attributes with nothing to map to in SMTP2GO's send API.
UNSUPPORTED = (
    "merge_data",
    "merge_metadata",
    "merge_headers",
    "envelope_sender",
    "track_clicks",
    "track_opens",
)
TAG_HEADER = "X-Tag"
METADATA_PREFIX = "X-Metadata-"
_TEXT_TYPES = {"plain": "text/plain", "html": "text/html"}


class _Whole(Exception):
    """The message says something the API's JSON fields cannot: it goes as MIME."""


class _Header(NamedTuple):
    #: Where it came from, to name it in an error: ``extra_headers.X-Foo``, ``tags``.
    origin: str
    name: str
    value: str


class EmailBackend(BaseEmailBackend):
    """Queues each message with outbox; ``send_messages`` counts the messages queued.

    ``fail_silently=True`` (what Django's ``AdminEmailHandler`` and ``mail_admins`` pass)
    swallows outbox's errors: the message is not counted, and a warning naming the error
    is logged on ``outbox.django``, so a refused error report is not lost without a trace.
    Anything else, a programming error, still raises. A message whose every recipient is
    suppressed raises :class:`~outbox.core.errors.RecipientsRefused`, as Django's SMTP backend
    raises ``SMTPRecipientsRefused``; its handle is kept all the same.
    """

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            message.outbox_handle = None
        queued = 0
        for message in email_messages:
            if not message.recipients():
                continue  # as Django's SMTP backend: nothing to send is no error
            try:
                handle = send_message(message)
                message.outbox_handle = handle
                if not handle.chunks:
                    raise RecipientsRefused(handle.id, handle.rejected)
            except OutboxError as exc:
                if not self.fail_silently:
                    raise
                logger.warning(
                    "message %r not queued (fail_silently): %s", force_str(message.subject), exc
                )
                continue
            queued += 1
        return queued


def send_message(message: EmailMessage) -> Handle:
    """Queue one Django message; its handle. Bad input raises ``ValidationError``."""
    errors: dict[str, str] = {}
    for name in UNSUPPORTED:
        if _given(message, name) is not None:
            errors[name] = "SMTP2GO's send API has no such option"
    options = _options(message, errors)
    to, cc, bcc = (_addresses(message, name) for name in ("to", "cc", "bcc"))
    extra = {force_str(k): force_str(v) for k, v in (message.extra_headers or {}).items()}
    sender = force_str(_pop(extra, "From") or message.from_email or "")
    for name in ("To", "Cc", "Bcc"):
        if _pop(extra, name) is not None:
            errors[f"extra_headers.{name}"] = (
                f"SMTP2GO sends to the addresses of the {name} header: set "
                f"message.{name.lower()} instead"
            )
    headers = [_Header(f"extra_headers.{k}", k, v) for k, v in extra.items()]
    reply_to = _reply_to(message, headers, errors)
    added = _added_headers(message, errors)
    _check_headers([*headers, *added], errors)
    template_id = _given(message, "template_id")
    data = _given(message, "merge_global_data")
    if data is not None and template_id is None:
        errors["merge_global_data"] = "fills a template: set template_id too"
    if errors:
        raise ValidationError(errors)

    subject = force_str(message.subject) or None
    common: dict[str, Any] = {
        "cc": cc,
        "bcc": bcc,
        "reply_to": reply_to,
        "custom_headers": [{"header": h.name, "value": h.value} for h in [*headers, *added]],
        **options,
    }
    if template_id is not None:
        try:
            attachments, inlines = _files(message)
            if inlines:
                raise _Whole
        except _Whole:
            problem = "a template message takes files with a name, no inline parts"
            raise ValidationError({"attachments": problem}) from None
        return send_template(
            sender, to, force_str(template_id), data, subject, attachments=attachments, **common
        )
    try:
        if any(len(h.name) + 2 + len(h.value) > MAX_HEADER_LINE for h in [*headers, *added]):
            raise _Whole
        text_body, html_body = _bodies(message)
        attachments, inlines = _files(message)
    except _Whole:
        addresses = {"sender": [sender], "to": to, "cc": cc}
        return _send_whole(message, addresses, added, **options)
    return send_email(
        sender,
        to,
        subject,
        html_body,
        text_body,
        attachments=attachments,
        inlines=inlines,
        **common,
    )


def _given(message: EmailMessage, name: str) -> Any:
    """An optional attribute; django-anymail marks the unset ones with its class ``UNSET``."""
    value = getattr(message, name, None)
    return None if getattr(value, "__name__", None) == "UNSET" else value


def _pop(headers: dict[str, str], name: str) -> str | None:
    """Remove a header whatever its case; its value."""
    for key in list(headers):
        if key.lower() == name.lower():
            return headers.pop(key)
    return None


def _addresses(message: EmailMessage, name: str) -> list[str]:
    value = getattr(message, name, None) or []
    if isinstance(value, str):  # Django's own check, for an attribute set after __init__
        raise TypeError(f'"{name}" argument must be a list or tuple')
    return [force_str(address) for address in value]


def _options(message: EmailMessage, errors: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if (send_at := _given(message, "send_at")) is not None:
        options["send_at"] = send_at
    extra = _given(message, "esp_extra") or {}
    if not isinstance(extra, Mapping):
        errors["esp_extra"] = f"must be a mapping of {', '.join(OPTIONS)}"
        extra = {}
    for key, value in extra.items():
        if key in OPTIONS:
            options[key] = value
        else:
            errors[f"esp_extra.{key}"] = f"not an option of outbox's sends ({', '.join(OPTIONS)})"
    if isinstance(options.get("send_at"), date):
        options["send_at"] = _aware(options["send_at"])
    return options


def _aware(value: date) -> datetime:
    """A naive time or a date (its midnight) in Django's current time zone."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _reply_to(message: EmailMessage, headers: list[_Header], errors: dict[str, str]) -> str | None:
    """One address for ``reply_to``; several travel as a ``Reply-To`` header."""
    if any(h.name.lower() == "reply-to" for h in headers):
        return None  # an explicit header wins, as in Django's own message
    replies = _addresses(message, "reply_to")
    if len(replies) <= 1:
        return replies[0] if replies else None
    for i, address in enumerate(replies):
        try:
            validate_address(address)
        except ValueError as exc:
            errors[f"reply_to.{i}"] = str(exc)
    headers.append(_Header("reply_to", "Reply-To", ", ".join(replies)))
    return None


def _added_headers(message: EmailMessage, errors: dict[str, str]) -> list[_Header]:
    """django-anymail's tags and metadata, as headers."""
    added: list[_Header] = []
    tags = _given(message, "tags")
    if tags:
        if isinstance(tags, str):
            raise TypeError('"tags" attribute must be a list or tuple')
        texts = [force_str(tag) for tag in tags]
        for i, tag in enumerate(texts):
            if "," in tag:
                errors[f"tags.{i}"] = "must not contain a comma (the tags travel in one header)"
        added.append(_Header("tags", TAG_HEADER, ", ".join(texts)))
    metadata = _given(message, "metadata")
    if metadata and not isinstance(metadata, Mapping):
        errors["metadata"] = "must be a mapping"
    elif metadata:
        added += [
            _Header(f"metadata.{key}", METADATA_PREFIX + force_str(key), force_str(value))
            for key, value in metadata.items()
        ]
    return added


def _check_headers(headers: list[_Header], errors: dict[str, str]) -> None:
    """What no route may carry; the length is the route's question."""
    for origin, name, value in headers:
        if not FIELD_NAME.fullmatch(name):
            errors[origin] = f"not a header name (printable ASCII, no spaces or colons): {name!r}"
        elif name.lower() in FORBIDDEN_HEADERS:
            errors[origin] = f"{name} is the message's own header and may not be set"
        elif any(c in value for c in "\r\n\x00"):
            errors[origin] = "must not contain CR, LF or NUL characters"


def _bodies(message: EmailMessage) -> tuple[str | None, str | None]:
    """``(text_body, html_body)``; any other part, or none at all, needs the whole message."""
    found: dict[str, str] = {}
    parts = [(message.body, _TEXT_TYPES.get(message.content_subtype, ""))]
    parts += [(content, mimetype) for content, mimetype in getattr(message, "alternatives", [])]
    for content, mimetype in parts:
        text = force_str(content)
        if not text:
            continue  # Django's default body is empty
        if mimetype not in _TEXT_TYPES.values() or mimetype in found:
            raise _Whole
        found[mimetype] = text
    if not found:
        raise _Whole
    return found.get("text/plain"), found.get("text/html")


def _files(message: EmailMessage) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(attachments, inlines)`` as the producers take them.

    The API needs a name for each file (an inline's is its Content-ID) and some content.
    """
    attachments: list[dict[str, str]] = []
    inlines: list[dict[str, str]] = []
    for item in message.attachments:
        if isinstance(item, Message):  # MIMEBase, or Django 6's MIMEPart
            if item.is_multipart():
                raise _Whole
            disposition, cid = item.get_content_disposition(), item.get("Content-ID")
            inline = disposition == "inline" or (disposition is None and cid is not None)
            filename = cid if inline else item.get_filename()
            content, mimetype = item.get_payload(decode=True), item.get_content_type()
        else:
            (filename, content, mimetype), inline = item, False
        data = _bytes(content)
        if not filename or not data:
            raise _Whole
        file = {"fileblob": base64.b64encode(data).decode("ascii")}
        if mimetype:
            file["mimetype"] = mimetype
        if inline:
            inlines.append({"cid": str(filename), **file})
        else:
            attachments.append({"filename": force_str(filename), **file})
    return attachments, inlines


def _bytes(content: Any) -> bytes:
    if isinstance(content, EmailMessage):  # a message/rfc822 attachment
        content = content.message()
    if isinstance(content, Message):
        content = content.as_bytes()
    if isinstance(content, str):
        content = content.encode()
    return bytes(content or b"")


def _send_whole(
    message: EmailMessage, addresses: dict[str, list[str]], added: list[_Header], **options: Any
) -> Handle:
    """The message as Django builds it, through ``email/mime``.

    ``send_mime`` takes the recipients from the headers as they are, so the addresses are
    checked here, as ``send_email`` would check them.
    """
    errors: dict[str, str] = {}
    for name, values in addresses.items():
        for i, address in enumerate(values):
            try:
                validate_address(address)
            except ValueError as exc:
                errors[f"{name}.{i}" if name != "sender" else name] = str(exc)
    if message.bcc:
        errors["bcc"] = (
            "this message goes whole (as MIME), where SMTP2GO reads recipients from the "
            "headers, so Bcc would show: send the Bcc recipients a message of their own"
        )
    for name in ("to", "cc"):
        if len(getattr(message, name)) > MAX_RECIPIENTS:
            errors[name] = f"at most {MAX_RECIPIENTS} in a message sent whole (as MIME)"
    if errors:
        raise ValidationError(errors)
    try:
        mime = message.message()
    except ValueError as exc:  # Django's BadHeaderError: a line break in a header
        raise ValidationError({"message": str(exc)}) from exc
    for header in added:
        mime[header.name] = header.value
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False).flatten(mime, linesep="\r\n")
    return send_mime(buffer.getvalue().decode("utf-8", errors="surrogateescape"), **options)


# -- ``INSTALLED_APPS = [..., "outbox.django"]``: system checks ----------------------------

#: The settings Django sends from, what sends from each, and the check's number.
_SENDERS = (
    ("DEFAULT_FROM_EMAIL", "send_mail and EmailMessage without a from_email", 1),
    ("SERVER_EMAIL", "mail_admins and mail_managers (500-error reports)", 2),
)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Name the sender settings outbox would refuse at send time, before they bite.

    A fresh ``startproject`` sends from ``webmaster@localhost`` and ``root@localhost``;
    SMTP2GO takes neither (no dot in the domain), and Django's ``AdminEmailHandler`` sends
    with ``fail_silently=True``, so a live site's error reports would only be a log line.
    """
    from django.conf import settings
    from django.core import checks

    if getattr(settings, "EMAIL_BACKEND", "") != f"{__name__}.EmailBackend":
        return []
    found: list[Any] = []
    for name, used_by, number in _SENDERS:
        value = force_str(getattr(settings, name, "") or "")
        try:
            validate_address(value)
        except ValueError as exc:
            wanted = name == "DEFAULT_FROM_EMAIL" or bool(settings.ADMINS or settings.MANAGERS)
            kind = checks.Error if wanted else checks.Warning
            found.append(
                kind(
                    f"{name} = {value!r} would be refused by outbox: {exc}",
                    hint=f"Set {name} to an address on a domain verified with SMTP2GO, "
                    f"e.g. 'Shop <shop@example.com>'; {used_by} send from it.",
                    obj=name,
                    id=f"outbox.{'E' if wanted else 'W'}00{number}",
                )
            )
    return found


def _register_checks() -> None:
    from django.core import checks

    checks.register(check_settings, checks.Tags.compatibility)


_register_checks()
