"""What a web app calls: validate at once, record, enqueue, return a handle.

Validation runs in the caller's process with the same pydantic models the worker's
client serialises, so a bad address or an empty body is refused here, naming each bad
field, and nothing is recorded or enqueued. The producers refuse what can only be a
mistake (a header with a line break, a malformed address), never what the API accepts
(an email without a subject, an attachment without a MIME type).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any, TypeAlias

import redis
from celery.canvas import Signature
from pydantic import ValidationError as PydanticValidationError

from outbox.chunking import address_key, chunk_count, dedupe, split
from outbox.core.errors import EnqueueError, ValidationError
from outbox.core.smtp2go.models import (
    MAX_EMAIL_REQUEST_BYTES,
    MAX_RECIPIENTS,
    RECIPIENTS_ROOM,
    EmailSend,
    MimeSend,
    SmsSend,
    base64_size,
    field_errors_of,
    file_too_large,
    validate_address,
)
from outbox.core.states import Kind
from outbox.core.store.chunks import ChunkSlice
from outbox.core.text import as_text
from outbox.enqueue import enqueue
from outbox.handle import Handle
from outbox.options import Lane, Options, check_options
from outbox.worker.runtime import get_runtime

__all__ = ["email_chunks", "send_email", "send_mime", "send_sms", "send_template"]

#: What a refused recipient's ledger entry says.
SUPPRESSED = "on the local suppression list (a hard bounce, a complaint or the account's list)"
#: What one message may carry, recipients aside (the model's rule; see ``RECIPIENTS_ROOM``).
_ROOM = MAX_EMAIL_REQUEST_BYTES - RECIPIENTS_ROOM
#: A stand-in recipient: the shared fields are checked once, without the real lists.
_PROBE = "probe@example.com"

Headers: TypeAlias = Mapping[str, str] | Sequence[Mapping[str, str]] | None
Callback: TypeAlias = Signature | Mapping[str, Any] | None
#: An attachment or inline: ``{"filename", "content": bytes}``, ``{"filename", "fileblob":
#: base64}``, ``{"filename", "url"}``, or a file on disk: ``Path(...)`` or ``{"path": ...}``
#: (read at the call; ``filename`` and ``mimetype`` come from the path unless given).
File: TypeAlias = Mapping[str, Any] | os.PathLike[str]


def _as_list(value: str | Iterable[str] | None, name: str, errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        errors[name] = "must be a string or a list of strings"
        return []


def _files(value: Sequence[File], name: str, errors: dict[str, str]) -> list[Any]:
    """A list of files (attachments, inlines): anything but a list of them is refused,
    and each path is read here, in the caller's process (a worker never reads the app's
    disk)."""
    if isinstance(value, str | bytes | Mapping | os.PathLike):
        errors[name] = "must be a list of files (mappings or paths)"
        return []
    try:
        items = list(value)
    except TypeError:
        errors[name] = "must be a list of files (mappings or paths)"
        return []
    return [_file(item, f"{name}.{i}", errors) for i, item in enumerate(items)]


def _file(item: Any, where: str, errors: dict[str, str]) -> Any:
    """One file as the model takes it: a path becomes its name and bytes."""
    if isinstance(item, os.PathLike):
        item = {"path": item}
    elif isinstance(item, str | bytes):
        errors[where] = (
            "a file is a mapping or a path: Path(...) or {'path': ...} for a file on disk, "
            "{'filename', 'content': bytes}, {'filename', 'fileblob': base64} or "
            "{'filename', 'url'}"
        )
        return item
    if not isinstance(item, Mapping) or "path" not in item:
        return item
    rest = {key: value for key, value in item.items() if key != "path"}
    path = item["path"]
    given = [key for key in ("content", "fileblob", "url") if rest.get(key) is not None]
    if given:
        errors[f"{where}.path"] = f"give path or {given[0]}, not both"
        return rest
    if not isinstance(path, str | os.PathLike) or not str(path):
        errors[f"{where}.path"] = "must be a path (a str or a pathlib.Path)"
        return rest
    file = Path(path)
    try:
        on_disk = file.stat().st_size
        if base64_size(on_disk) > _ROOM:  # over on its own: not worth reading
            name = str(rest.get("filename") or file.name)
            errors[where] = file_too_large("email/send", base64_size(on_disk), name, on_disk, _ROOM)
            return rest
        content = file.read_bytes()
    except FileNotFoundError:
        errors[f"{where}.path"] = f"no such file: {file}"
        return rest
    except IsADirectoryError:
        errors[f"{where}.path"] = f"is a directory, not a file: {file}"
        return rest
    except OSError as exc:
        errors[f"{where}.path"] = f"cannot read {file}: {exc.strerror or exc}"
        return rest
    return {"filename": file.name, **rest, "content": content}


def _options(
    errors: dict[str, str],
    idempotency_key: str | None,
    send_at: datetime | float | None,
    callback: Callback,
    lane: Lane | None,
    tenant: str | None,
) -> Options:
    return check_options(
        errors,
        idempotency_key=idempotency_key,
        send_at=send_at,
        callback=callback,
        lane=lane,
        tenant=tenant,
        retention=get_runtime().settings.retention_seconds,
    )


def _email(
    kind: Kind,
    *,
    to: str | Iterable[str],
    cc: str | Iterable[str],
    bcc: str | Iterable[str],
    fields: dict[str, Any],
    errors: dict[str, str],
    options: Options,
) -> Handle:
    lists = {
        name: _as_list(value, name, errors)
        for name, value in (("to", to), ("cc", cc), ("bcc", bcc))
    }
    for name, values in lists.items():
        for i, value in enumerate(values):
            try:
                validate_address(value)
            except (ValueError, TypeError) as exc:
                errors[f"{name}.{i}"] = str(exc)
    if not lists["to"] and "to" not in errors:
        errors["to"] = "at least one recipient is required"
    # The shared fields are checked once, with a stand-in recipient: the model is the one
    # definition of a valid message, and every bad field is named in one error.
    base: dict[str, Any] = {}
    try:
        base = EmailSend.model_validate({**fields, "to": [_PROBE]}).to_wire()
        del base["to"]
    except PydanticValidationError as exc:
        # A file already refused here (a path that cannot be read) is named once, by that.
        named = _files_of(errors)
        for name, problem in field_errors_of(exc).items():
            if not any(name == key or name.startswith(f"{key}.") for key in named):
                errors[name] = problem
    # The model's rule names every way the API takes a body; each producer names only the
    # fields it takes (send_template's template_id has its own error already).
    if kind is Kind.EMAIL and not (fields.get("html_body") or fields.get("text_body")):
        errors["html_body"] = "give html_body or text_body"
    elif kind is Kind.TEMPLATE:
        errors.pop("html_body", None)
    if errors:
        raise ValidationError(errors)

    chunks, refused = email_chunks(lists["to"], lists["cc"], lists["bcc"], errors)
    if errors:
        raise ValidationError(errors)
    return enqueue(kind, base, chunks, options, refused=refused)


def _files_of(errors: Mapping[str, str]) -> list[str]:
    """The files (``attachments.0``) with an error of their own already."""
    return [
        ".".join(key.split(".")[:2])
        for key in errors
        if key.startswith(("attachments.", "inlines."))
    ]


def email_chunks(
    to: Sequence[str], cc: Sequence[str], bcc: Sequence[str], errors: dict[str, str]
) -> tuple[list[ChunkSlice], list[tuple[str, str]]]:
    """Checked recipient lists as chunks of at most 100 of each, and the recipients
    refused because they are suppressed (``(address, why)``). See :mod:`outbox.chunking`."""
    to_list, cc_list, bcc_list = dedupe(to, cc, bcc)
    everyone = [*to_list, *cc_list, *bcc_list]
    try:
        blocked = get_runtime().store.suppressions.matching(address_key(a) for a in everyone)
    except redis.RedisError as exc:
        raise EnqueueError(f"Redis is unreachable; nothing was recorded: {exc}") from exc
    refused: list[tuple[str, str]] = []
    if blocked:  # rare: skip re-parsing every address when nobody is suppressed
        refused = [(a, SUPPRESSED) for a in everyone if address_key(a) in blocked]
        to_list, cc_list, bcc_list = (
            [a for a in lst if address_key(a) not in blocked]
            for lst in (to_list, cc_list, bcc_list)
        )
    n = chunk_count(len(to_list))
    for name, lst in (("cc", cc_list), ("bcc", bcc_list)):
        if chunk_count(len(lst)) > max(n, 1 if to_list else 0):
            errors[name] = (
                f"{len(lst)} addresses need {chunk_count(len(lst))} requests of "
                f"{MAX_RECIPIENTS}, but 'to' fills only {n}; move some to 'to' or send "
                "separately so nobody gets two copies"
            )
    chunks: list[ChunkSlice] = []
    for i in range(n):
        part = {"to": split(to_list, i), "cc": split(cc_list, i), "bcc": split(bcc_list, i)}
        part = {name: lst for name, lst in part.items() if lst}
        chunks.append(([a for lst in part.values() for a in lst], part))
    return chunks, refused


def send_email(
    sender: str,
    to: str | Iterable[str],
    subject: str | None = None,
    html_body: str | None = None,
    text_body: str | None = None,
    cc: str | Iterable[str] = (),
    bcc: str | Iterable[str] = (),
    reply_to: str | None = None,
    custom_headers: Headers = None,
    attachments: Sequence[File] = (),
    inlines: Sequence[File] = (),
    *,
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Callback = None,
    lane: Lane | None = None,
    tenant: str | None = None,
) -> Handle:
    """Queue an email; lists over 100 recipients are split into chunks of 100.

    ``attachments``, ``inlines``: files as bytes, a path (read now), base64 or a URL (see
    :data:`File`); an inline's ``cid`` (or ``filename``) is its ``<img src="cid:...">``.
    ``idempotency_key``: a second call with the same key returns the first handle and
    enqueues nothing. ``send_at``: a timezone-aware datetime or epoch seconds.
    ``callback``: a Celery signature, called once with the final record. ``lane``:
    ``"transactional"`` (served first) or ``"bulk"``; by default a send of at most
    ``OUTBOX_BULK_THRESHOLD`` chunks is transactional, a larger one bulk. ``tenant``: whose
    mail it is; tenants share the account's limit by ``OUTBOX_TENANT_WEIGHTS``.
    """
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {
        "sender": sender,
        "subject": subject,
        "html_body": html_body,
        "text_body": text_body,
        "reply_to": reply_to,
        "custom_headers": custom_headers or [],
        "attachments": _files(attachments, "attachments", errors),
        "inlines": _files(inlines, "inlines", errors),
    }
    options = _options(errors, idempotency_key, send_at, callback, lane, tenant)
    return _email(Kind.EMAIL, to=to, cc=cc, bcc=bcc, fields=fields, errors=errors, options=options)


def send_template(
    sender: str,
    to: str | Iterable[str],
    template_id: str,
    template_data: Mapping[str, Any] | None = None,
    subject: str | None = None,
    cc: str | Iterable[str] = (),
    bcc: str | Iterable[str] = (),
    reply_to: str | None = None,
    custom_headers: Headers = None,
    attachments: Sequence[File] = (),
    *,
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Callback = None,
    lane: Lane | None = None,
    tenant: str | None = None,
) -> Handle:
    """Queue an email rendered by SMTP2GO from a stored template (``template_data`` fills
    its variables); the options are those of :func:`send_email`."""
    errors: dict[str, str] = {}
    if not template_id:
        errors["template_id"] = "a template id is required"
    if template_data is not None and not isinstance(template_data, Mapping):
        errors["template_data"] = "must be a mapping (a JSON object)"
    fields: dict[str, Any] = {
        "sender": sender,
        "subject": subject,
        "template_id": template_id or None,
        "template_data": dict(template_data) if isinstance(template_data, Mapping) else {},
        "reply_to": reply_to,
        "custom_headers": custom_headers or [],
        "attachments": _files(attachments, "attachments", errors),
    }
    options = _options(errors, idempotency_key, send_at, callback, lane, tenant)
    return _email(
        Kind.TEMPLATE, to=to, cc=cc, bcc=bcc, fields=fields, errors=errors, options=options
    )


def _mime_recipients(text: str) -> list[str]:
    headers = HeaderParser().parsestr(text, headersonly=True)
    values = [v for name in ("to", "cc", "bcc") for v in headers.get_all(name, [])]
    return [addr for _, addr in getaddresses(values) if addr]


def send_mime(
    mime_email: str | bytes,
    *,
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Callback = None,
    lane: Lane | None = None,
    tenant: str | None = None,
) -> Handle:
    """Queue a complete MIME message; its own To/Cc/Bcc headers name the recipients."""
    errors: dict[str, str] = {}
    text = as_text(mime_email)
    base: dict[str, Any] = {}
    try:
        base = MimeSend.model_validate({"mime_email": text}).to_wire()
    except PydanticValidationError as exc:
        errors.update(field_errors_of(exc))
    options = _options(errors, idempotency_key, send_at, callback, lane, tenant)
    recipients = _mime_recipients(text) if not errors else []
    if not errors and not recipients:
        errors["mime_email"] = "no To, Cc or Bcc header names a recipient"
    if errors:
        raise ValidationError(errors)
    return enqueue(Kind.MIME, base, [(recipients, {})], options)


def send_sms(
    to: str | Iterable[str],
    message: str,
    sender: str | None = None,
    *,
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Callback = None,
    lane: Lane | None = None,
    tenant: str | None = None,
) -> Handle:
    """Queue an SMS to E.164 numbers (``+61400000000``); over 100 are split into chunks."""
    errors: dict[str, str] = {}
    given = _as_list(to, "to", errors)
    for i, number in enumerate(given):
        if not isinstance(number, str):
            errors[f"to.{i}"] = "must be a string"
    if errors:
        raise ValidationError(errors)
    numbers = list(dict.fromkeys(given))
    if not numbers:
        errors["to"] = "at least one number is required"
    parts = [split(numbers, i) for i in range(chunk_count(len(numbers)))]
    base: dict[str, Any] = {}
    for i, part in enumerate(parts or [["+10000000000"]]):
        try:
            wire = SmsSend.model_validate(
                {"destination": part, "content": message, "sender": sender}
            ).to_wire()
        except PydanticValidationError as exc:
            for name, problem in field_errors_of(exc).items():
                head, _, rest = name.partition(".")
                if head == "destination":
                    index = int(rest.split(".")[0]) + i * MAX_RECIPIENTS if rest else None
                    errors[f"to.{index}" if index is not None else "to"] = problem
                else:
                    errors["message" if head == "content" else head] = problem
            continue
        wire.pop("destination", None)
        base = wire
    options = _options(errors, idempotency_key, send_at, callback, lane, tenant)
    if errors:
        raise ValidationError(errors)
    return enqueue(Kind.SMS, base, [(part, {"destination": part}) for part in parts], options)
