"""A task's payload as the API will get it: recognised cheaply, tagged, sent as it is.

The producer validated every message with the full request models and published their
wire form (:meth:`~outbox.core.smtp2go.requests.WireModel.to_wire`), so a worker
need not validate it again on every attempt (that was ~7 % of its CPU per send). It
only has to recognise a *poison* message: one no producer of this version wrote (an
older shape, a hand-written task), which retrying can never help. :func:`check` looks
at the shape (the keys, their types, a body or a template, no line break where a header
is built) and raises :class:`PoisonPayload` naming every bad field; what only the API
can judge (is this address deliverable?) it leaves to the API, which answers 400.

The payload's format has a version, carried in the message's ``outbox_payload`` header
(:data:`VERSION_HEADER`) and kept on the batch's record, so whoever publishes the chunk
again (the relay, the sweep, a replay) marks it as its producer did. A worker reads
:data:`PAYLOAD_VERSION` and the one before it, so a fleet is upgraded workers first,
then producers; a version newer than it knows is not guessed at: once this worker's
claim makes the chunk its own (never under another worker's lease), it ends dead with
the reason (:class:`UnknownPayloadVersion`), to be replayed once a worker that reads it
runs. Version 1 is every message without the header (what producers wrote
through 0.2.0); version 2 is the same body, marked.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from outbox.core.kinds import KINDS
from outbox.core.smtp2go.checks import MAX_RECIPIENTS, check_e164, validate_address
from outbox.core.smtp2go.requests import EmailSend, MimeSend, SmsSend, WireModel
from outbox.core.states import Kind

__all__ = [
    "OLDEST_PAYLOAD_VERSION",
    "OUTBOX_ID_HEADER",
    "PAYLOAD_VERSION",
    "UNMARKED_VERSION",
    "VERSION_HEADER",
    "PoisonPayload",
    "Shape",
    "UnknownPayloadVersion",
    "check",
    "check_version",
    "recorded_version",
    "shape",
    "tagged",
]

#: Custom header carrying the chunk id on every email, so a send can be found again in
#: ``activity/search`` (:mod:`outbox.worker.reconcile`).
OUTBOX_ID_HEADER = "X-Outbox-Id"


#: The payload format this version of outbox writes.
PAYLOAD_VERSION = 2
#: The oldest format a worker still reads: one version back, so producers one release
#: behind the workers are delivered as they always were.
OLDEST_PAYLOAD_VERSION = 1
#: The message header (and the batch record's field) that carries the format's version;
#: a message without it is version 1.
VERSION_HEADER = "outbox_payload"
#: The format of a message (or a record) without a version: what producers wrote
#: through 0.2.0, whatever the oldest a worker reads today.
UNMARKED_VERSION = 1


class UnknownPayloadVersion(ValueError):
    """A payload in a format this worker does not read: dead with the reason, never
    guessed at, and sent by a replay once a worker that reads it runs."""

    def __init__(self, version: object) -> None:
        if isinstance(version, int) and version > PAYLOAD_VERSION:
            why = "newer than this worker reads; upgrade the workers, then `outbox replay` it"
        else:
            why = "not a version outbox writes"
        super().__init__(
            f"payload version {version!r} is {why} (it reads "
            f"{OLDEST_PAYLOAD_VERSION} to {PAYLOAD_VERSION})"
        )
        self.version = version


def check_version(version: object) -> int:
    """The payload format's version (``None``, no header: 1) if this worker reads it;
    else :class:`UnknownPayloadVersion`."""
    if version is None:
        version = UNMARKED_VERSION
    if (
        isinstance(version, int)
        and not isinstance(version, bool)
        and OLDEST_PAYLOAD_VERSION <= version <= PAYLOAD_VERSION
    ):
        return version
    raise UnknownPayloadVersion(version)


def recorded_version(field: str | None) -> int | str:
    """A batch record's version field as a message's header carries it: none is the
    unmarked format, a number's text that number; anything else stays as it is, for the
    worker to refuse (:func:`check_version`)."""
    if field is None:
        return UNMARKED_VERSION
    return int(field) if field.isdigit() else field


class PoisonPayload(ValueError):
    """A payload no producer of this version wrote: dead at once, never retried."""

    def __init__(self, field_errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in field_errors.items()))
        self.field_errors = field_errors


def _line(value: Any) -> str | None:
    """Why ``value`` cannot be a header's text, or ``None``."""
    if not isinstance(value, str):
        return "must be a string"
    if "\r" in value or "\n" in value:
        return "must not contain a line break"
    return None


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _recipients(name: str, value: Any, valid: Callable[[str], str], errors: dict[str, str]) -> None:
    """Each address (or number) checked as the request models check it; a single
    string stands for a list of one, as there."""
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list):
        errors[name] = "must be a list"
        return
    if len(value) > MAX_RECIPIENTS:
        errors[name] = f"at most {MAX_RECIPIENTS} addresses"
    for i, item in enumerate(value):
        try:
            valid(item if isinstance(item, str) else "")
        except ValueError as exc:
            errors[f"{name}.{i}"] = str(exc) or "not an address"


def _files(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of files"
    for item in value:
        if not isinstance(item, dict) or _line(item.get("filename")):
            return "every file needs a one-line filename"
        if not isinstance(item.get("fileblob", item.get("url")), str):
            return "every file needs a fileblob or a url"
    return None


def _headers(value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be a list of {header, value}"
    for item in value:
        if not isinstance(item, dict) or _line(item.get("header")) or _line(item.get("value")):
            return "every header needs a one-line header and value"
    return None


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be an object"


def _sender(value: Any) -> str | None:
    try:
        validate_address(value if isinstance(value, str) else "")
    except ValueError as exc:
        return str(exc) or "not an address"
    return None


_Check = Callable[[Any], str | None]
#: Checked by :func:`_recipients`, by kind.
_RECIPIENTS: dict[str, Callable[[str], str]] = {
    "to": validate_address,
    "cc": validate_address,
    "bcc": validate_address,
    "destination": check_e164,
}
_EMAIL: dict[str, _Check] = {
    "sender": _sender,
    "subject": _line,
    "html_body": _text,
    "text_body": _text,
    "template_id": _line,
    "template_data": _object,
    "custom_headers": _headers,
    "attachments": _files,
    "inlines": _files,
    "fastaccept": _flag,
}
_MIME: dict[str, _Check] = {"mime_email": _text, "fastaccept": _flag}
_SMS: dict[str, _Check] = {
    "content": lambda v: None if isinstance(v, str) and v.strip() else "must be a message",
    "sender": _line,
}


def _email_whole(payload: Mapping[str, Any], errors: dict[str, str]) -> None:
    if not any(payload.get(k) for k in ("html_body", "text_body", "template_id")):
        errors.setdefault("html_body", "give html_body, text_body or template_id")


def _mime_whole(payload: Mapping[str, Any], errors: dict[str, str]) -> None:
    if "mime_email" not in errors:
        try:
            base64.b64decode(payload["mime_email"], validate=True)
        except (binascii.Error, ValueError):
            errors["mime_email"] = "is not base64"


def _no_whole(payload: Mapping[str, Any], errors: dict[str, str]) -> None:
    return None


def _tag_email(body: dict[str, Any], chunk_id: str) -> dict[str, Any]:
    headers = [h for h in body.get("custom_headers", ()) if h["header"].lower() != "x-outbox-id"]
    headers.append({"header": OUTBOX_ID_HEADER, "value": chunk_id})
    body["custom_headers"] = headers
    return body


def _tag_mime(body: dict[str, Any], chunk_id: str) -> dict[str, Any]:
    raw = base64.b64decode(body["mime_email"])
    if not raw.lower().startswith(b"x-outbox-id:"):
        raw = f"{OUTBOX_ID_HEADER}: {chunk_id}\r\n".encode() + raw
        body["mime_email"] = base64.b64encode(raw).decode("ascii")
    return body


def _untagged(body: dict[str, Any], chunk_id: str) -> dict[str, Any]:
    return body  # no header to carry it: found again by what it says (reconcile)


@dataclass(frozen=True, slots=True)
class Shape:
    """What a payload of one request model looks like, and how its chunk id is carried."""

    #: The rule of each field a producer writes (other fields are poison).
    rules: Mapping[str, _Check]
    required: tuple[str, ...]
    #: The recipients' lists, checked by :func:`_recipients`; the first must not be
    #: empty. Empty: the recipients are inside the message (MIME).
    lists: tuple[str, ...]
    #: The checks of the payload as a whole, after the fields'.
    whole: Callable[[Mapping[str, Any], dict[str, str]], None]
    tag: Callable[[dict[str, Any], str], dict[str, Any]]


#: The shape of each sending request model (a kind's endpoint's, :mod:`.kinds`).
_SHAPES: dict[type[WireModel], Shape] = {
    EmailSend: Shape(_EMAIL, ("sender", "to"), ("to", "cc", "bcc"), _email_whole, _tag_email),
    MimeSend: Shape(_MIME, ("mime_email",), (), _mime_whole, _tag_mime),
    SmsSend: Shape(_SMS, ("destination",), ("destination",), _no_whole, _untagged),
}


def shape(kind: Kind) -> Shape:
    """The payload's shape of ``kind``: its endpoint's request model's."""
    request = KINDS[kind].endpoint.request
    assert request is not None, f"{kind} is sent with no request body"
    return _SHAPES[request]


def check(kind: Kind, payload: Any) -> dict[str, Any]:
    """``payload`` if it has the shape a producer writes for ``kind``; else
    :class:`PoisonPayload` with every bad field."""
    if not isinstance(payload, dict):
        raise PoisonPayload({"__root__": "the payload is not an object"})
    form = shape(kind)
    errors: dict[str, str] = {}
    for name in form.required:
        if name not in payload:
            errors[name] = "is required"
    for name, value in payload.items():
        if name in form.lists:
            _recipients(name, value, _RECIPIENTS[name], errors)
            continue
        rule = form.rules.get(name)
        problem = "is not a field of this message" if rule is None else rule(value)
        if problem:
            errors[name] = problem
    if any(not payload.get(name) for name in form.lists[:1] if name in payload):
        errors.setdefault(form.lists[0], "must not be empty")
    form.whole(payload, errors)
    if errors:
        raise PoisonPayload(errors)
    return payload


def tagged(kind: Kind, wire: Mapping[str, Any], chunk_id: str) -> dict[str, Any]:
    """The body as sent: it carries the chunk id, so the send can be found again."""
    return shape(kind).tag(dict(wire), chunk_id)
