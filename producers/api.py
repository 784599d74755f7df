"""What a web app calls: validate at once, record, enqueue, return a handle.

Validation runs in the caller's process with the same pydantic models the worker's
client serialises, so a bad address or an empty body is refused here, naming each bad
field, and nothing is recorded or enqueued. A call is recorded in one Redis script call
(all chunks, the shared payload, the idempotency key) before any task is published; a
producer that dies between the two leaves ``queued`` chunks that the stuck-message
sweep publishes.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery.canvas import Signature
from pydantic import ValidationError as PydanticValidationError

from outbox.chunking import address_key, chunk_count, dedupe, split
from outbox.errors import RecordNotFound, ValidationError
from outbox.worker import keys
from outbox.worker.app import app
from outbox.worker.fanout import FAN_OUT_TASK
from outbox.worker.payloads import TASK_NAMES
from outbox.worker.records import Record, load_chunk, load_record
from outbox.worker.runtime import get_runtime
from outbox.worker.smtp2go.models import (
    MAX_RECIPIENTS,
    EmailSend,
    MimeSend,
    SmsSend,
    field_errors_of,
    validate_address,
)
from outbox.worker.states import Kind
from outbox.worker.store import ChunkSpec, batch_id_of, chunk_id_for

__all__ = [
    "Handle",
    "RecordNotFound",
    "ValidationError",
    "send_email",
    "send_mime",
    "send_sms",
    "send_template",
    "status",
]


@dataclass(frozen=True)
class Handle:
    """What a send returns: the id to ask about, and what was enqueued."""

    id: str
    kind: str
    chunks: int
    recipients: int
    #: True when an earlier call with the same idempotency key created this record.
    duplicate: bool = False
    #: Recipients refused before enqueueing (locally suppressed).
    rejected: tuple[str, ...] = field(default=())

    def status(self) -> Record:
        return status(self.id)

    def wait(self, timeout: float = 60.0, interval: float = 0.25) -> Record:
        """Poll until every chunk is final; raises ``TimeoutError`` with the last state."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.status()
            if record.done:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.id} still {record.state} after {timeout:.0f}s")
            time.sleep(interval)


def status(handle_id: str) -> Record:
    """The record of a send (a batch id) or of one of its chunks (``<batch>.<n>``)."""
    store = get_runtime().store
    record = load_record(store, handle_id)
    if record is None and "." in handle_id:
        record = load_record(store, batch_id_of(handle_id))
        if record is not None:
            chunk = load_chunk(store, handle_id)
            record.chunks = [chunk] if chunk else []
    if record is None:
        raise RecordNotFound(f"no record {handle_id!r} (unknown, or expired)")
    return record


# -- input checks -------------------------------------------------------------------------


def _as_list(value: str | Iterable[str] | None, name: str = "to") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise ValidationError({name: "must be a string or a list of strings"}) from None


def _items(value: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """A list of files (attachments, inlines): anything but a list of them is refused."""
    if isinstance(value, str | bytes | Mapping):
        raise ValidationError({name: "must be a list of files (mappings)"})
    try:
        return list(value)
    except TypeError:
        raise ValidationError({name: "must be a list of files (mappings)"}) from None


def _check_addresses(errors: dict[str, str], name: str, values: Sequence[str]) -> None:
    for i, value in enumerate(values):
        try:
            validate_address(value)
        except (ValueError, TypeError) as exc:
            errors[f"{name}.{i}"] = str(exc)


def _send_at(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError({"send_at": "must be timezone-aware"})
        when = value.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    else:
        raise ValidationError({"send_at": "must be a timezone-aware datetime or epoch seconds"})
    if not math.isfinite(when):
        raise ValidationError({"send_at": "must be a finite time"})
    # A record lives for the retention: a send due later would find it gone.
    retention = get_runtime().settings.retention_seconds
    if when - time.time() > retention:
        raise ValidationError(
            {
                "send_at": f"more than OUTBOX_RETENTION ({retention} s) ahead; the record would "
                "expire before it is due"
            }
        )
    return when


def _callback(value: Signature | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("task"), str)
        or not value["task"]
    ):
        raise ValidationError({"callback": "must be a Celery signature"})
    return dict(Signature(value))


def _idempotency(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise ValidationError({"idempotency_key": "must be a string of 1 to 200 characters"})
    return value


# -- enqueueing -----------------------------------------------------------------------------


def _enqueue(
    kind: Kind,
    base: dict[str, Any],
    chunks: list[tuple[list[str], dict[str, Any]]],
    *,
    idempotency_key: str | None,
    send_at: float | None,
    callback: dict[str, Any] | None,
    rejected: Sequence[str] = (),
) -> Handle:
    rt = get_runtime()
    batch_id = uuid.uuid4().hex
    delay = max(0.0, send_at - time.time()) if send_at is not None else 0.0
    if kind is Kind.SMS:
        queue = "sms"
    else:
        queue = "bulk" if len(chunks) > rt.settings.bulk_threshold else "email"
    specs = [
        ChunkSpec(
            id=chunk_id_for(batch_id, i),
            index=i,
            recipients=recipients,
            overrides=overrides,
            due_at=send_at,
        )
        for i, (recipients, overrides) in enumerate(chunks)
    ]
    extra: dict[str, str] = {}
    if send_at is not None:
        extra["send_at"] = f"{send_at:.6f}"
    if callback is not None:
        extra["callback"] = _json(callback)
    if rejected:
        extra["rejected"] = _json(list(rejected))
    found, created = rt.store.create(
        batch_id,
        kind=kind.value,
        chunks=specs,
        payload=base,
        idempotency_key=idempotency_key,
        queue=queue,
        extra=extra,
    )
    total = sum(len(r) for r, _ in chunks)
    if not created:
        record = load_record(rt.store, found)
        return Handle(
            id=found,
            kind=record.kind if record else kind.value,
            chunks=record.chunks_total if record else 0,
            recipients=record.recipients if record else 0,
            duplicate=True,
        )
    name = TASK_NAMES[kind]
    if delay > rt.settings.park_after:
        calls = [{"task": name, "chunk": spec.id} for spec in specs]
        rt.store.park_many(calls, rt.store.now() + delay)
    elif len(specs) > rt.settings.bulk_threshold:
        # One task that publishes the rest from a worker: two round trips here, not 100.
        app.send_task(
            FAN_OUT_TASK,
            args=[batch_id],
            queue=queue,
            routing_key=queue,
            countdown=delay or None,
        )
    else:
        with app.producer_or_acquire() as producer:
            for spec in specs:
                app.send_task(
                    name,
                    args=[spec.id, {**base, **spec.overrides}],
                    queue=queue,
                    routing_key=queue,
                    countdown=delay or None,
                    producer=producer,
                )
    return Handle(
        id=batch_id,
        kind=kind.value,
        chunks=len(specs),
        recipients=total,
        rejected=tuple(rejected),
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _suppressed(addresses: Iterable[str]) -> set[str]:
    """The subset of ``addresses`` in the local suppression set (one round trip)."""
    wanted = list({address_key(a) for a in addresses})
    if not wanted:
        return set()
    rt = get_runtime()
    flags = rt.redis.smismember(keys.suppressed(), wanted)
    return {a for a, hit in zip(wanted, flags, strict=True) if hit}


def _email(
    kind: Kind,
    *,
    to: str | Iterable[str],
    cc: str | Iterable[str],
    bcc: str | Iterable[str],
    fields: dict[str, Any],
    idempotency_key: str | None,
    send_at: datetime | float | None,
    callback: Signature | Mapping[str, Any] | None,
) -> Handle:
    errors: dict[str, str] = {}
    lists = {"to": _as_list(to, "to"), "cc": _as_list(cc, "cc"), "bcc": _as_list(bcc, "bcc")}
    for name, values in lists.items():
        _check_addresses(errors, name, values)
    if not lists["to"]:
        errors["to"] = "at least one recipient is required"
    # The shared fields are checked once, with a stand-in recipient: the model is the one
    # definition of a valid message, and every bad field is named in one error.
    base: dict[str, Any] = {}
    try:
        message = EmailSend.model_validate({**fields, "to": ["probe@example.com"]})
        base = message.to_wire()
        del base["to"]
    except PydanticValidationError as exc:
        errors.update(field_errors_of(exc))
    key = callback_dict = when = None
    try:
        key = _idempotency(idempotency_key)
        when = _send_at(send_at)
        callback_dict = _callback(callback)
    except ValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)

    to_list, cc_list, bcc_list = dedupe(lists["to"], lists["cc"], lists["bcc"])
    blocked = _suppressed([*to_list, *cc_list, *bcc_list])
    rejected: list[str] = []
    if blocked:  # rare: skip re-parsing every address when nobody is suppressed
        rejected = [a for a in (*to_list, *cc_list, *bcc_list) if address_key(a) in blocked]
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
    if errors:
        raise ValidationError(errors)
    chunks: list[tuple[list[str], dict[str, Any]]] = []
    for i in range(n):
        part = {"to": split(to_list, i), "cc": split(cc_list, i), "bcc": split(bcc_list, i)}
        part = {name: lst for name, lst in part.items() if lst}
        chunks.append(([a for lst in part.values() for a in lst], part))
    return _enqueue(
        kind,
        base,
        chunks,
        idempotency_key=key,
        send_at=when,
        callback=callback_dict,
        rejected=rejected,
    )


def send_email(
    sender: str,
    to: str | Iterable[str],
    subject: str,
    html_body: str | None = None,
    text_body: str | None = None,
    cc: str | Iterable[str] = (),
    bcc: str | Iterable[str] = (),
    reply_to: str | None = None,
    custom_headers: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    attachments: Sequence[Mapping[str, Any]] = (),
    inlines: Sequence[Mapping[str, Any]] = (),
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Signature | Mapping[str, Any] | None = None,
) -> Handle:
    """Queue an email; lists over 100 recipients are split into chunks of 100."""
    fields: dict[str, Any] = {
        "sender": sender,
        "subject": subject,
        "html_body": html_body,
        "text_body": text_body,
        "reply_to": reply_to,
        "custom_headers": custom_headers or [],
        "attachments": _items(attachments, "attachments"),
        "inlines": _items(inlines, "inlines"),
    }
    return _email(
        Kind.EMAIL,
        to=to,
        cc=cc,
        bcc=bcc,
        fields=fields,
        idempotency_key=idempotency_key,
        send_at=send_at,
        callback=callback,
    )


def _template_data(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError({"template_data": "must be a mapping (a JSON object)"})
    return dict(value)


def send_template(
    sender: str,
    to: str | Iterable[str],
    template_id: str,
    template_data: Mapping[str, Any] | None = None,
    subject: str | None = None,
    cc: str | Iterable[str] = (),
    bcc: str | Iterable[str] = (),
    reply_to: str | None = None,
    custom_headers: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    attachments: Sequence[Mapping[str, Any]] = (),
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Signature | Mapping[str, Any] | None = None,
) -> Handle:
    """Queue an email rendered by SMTP2GO from a stored template."""
    if not template_id:
        raise ValidationError({"template_id": "a template id is required"})
    fields: dict[str, Any] = {
        "sender": sender,
        "subject": subject,
        "template_id": template_id,
        "template_data": _template_data(template_data),
        "reply_to": reply_to,
        "custom_headers": custom_headers or [],
        "attachments": _items(attachments, "attachments"),
    }
    return _email(
        Kind.TEMPLATE,
        to=to,
        cc=cc,
        bcc=bcc,
        fields=fields,
        idempotency_key=idempotency_key,
        send_at=send_at,
        callback=callback,
    )


def send_mime(
    mime_email: str | bytes,
    idempotency_key: str | None = None,
    send_at: datetime | float | None = None,
    callback: Signature | Mapping[str, Any] | None = None,
) -> Handle:
    """Queue a complete MIME message; its own To/Cc/Bcc headers name the recipients."""
    text = mime_email.decode() if isinstance(mime_email, bytes) else mime_email
    try:
        message = MimeSend.model_validate({"mime_email": text})
    except PydanticValidationError as exc:
        raise ValidationError(field_errors_of(exc)) from None
    errors: dict[str, str] = {}
    key = when = callback_dict = None
    try:
        key = _idempotency(idempotency_key)
        when = _send_at(send_at)
        callback_dict = _callback(callback)
    except ValidationError as exc:
        errors.update(exc.errors)
    recipients = _mime_recipients(text)
    if not recipients:
        errors["mime_email"] = "no To, Cc or Bcc header names a recipient"
    if errors:
        raise ValidationError(errors)
    return _enqueue(
        Kind.MIME,
        message.to_wire(),
        [(recipients, {})],
        idempotency_key=key,
        send_at=when,
        callback=callback_dict,
    )


def _mime_recipients(text: str) -> list[str]:
    from email.parser import HeaderParser
    from email.utils import getaddresses

    headers = HeaderParser().parsestr(text, headersonly=True)
    values = [v for name in ("to", "cc", "bcc") for v in headers.get_all(name, [])]
    return [addr for _, addr in getaddresses(values) if addr]


def send_sms(
    to: str | Iterable[str],
    message: str,
    idempotency_key: str | None = None,
    sender: str | None = None,
    send_at: datetime | float | None = None,
    callback: Signature | Mapping[str, Any] | None = None,
) -> Handle:
    """Queue an SMS to E.164 numbers; over 100 numbers are split into chunks."""
    given = _as_list(to, "to")
    wrong = {f"to.{i}": "must be a string" for i, n in enumerate(given) if not isinstance(n, str)}
    if wrong:
        raise ValidationError(wrong)
    numbers = list(dict.fromkeys(given))
    errors: dict[str, str] = {}
    if not numbers:
        errors["to"] = "at least one number is required"
    chunks = [split(numbers, i) for i in range(chunk_count(len(numbers)))]
    base: dict[str, Any] = {}
    for i, part in enumerate(chunks or [["+10000000000"]]):
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
    key = when = callback_dict = None
    try:
        key = _idempotency(idempotency_key)
        when = _send_at(send_at)
        callback_dict = _callback(callback)
    except ValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    return _enqueue(
        Kind.SMS,
        base,
        [(part, {"destination": part}) for part in chunks],
        idempotency_key=key,
        send_at=when,
        callback=callback_dict,
    )
