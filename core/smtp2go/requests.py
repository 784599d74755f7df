"""The request bodies of SMTP2GO's sending endpoints, as pydantic models (the account
endpoints' are in :mod:`.management`).

One definition for both ends: producers validate with them (so bad input is refused
before anything is queued) and the client serialises them with :meth:`WireModel.to_wire`,
which never sends a ``null``: unset and empty fields are left out of the JSON body.

Where the reference the project was specified from differs from the real API, the
models speak the real API and accept the friendlier names on input:

- SMS: input ``to`` / ``message`` are accepted, the wire names are ``destination`` /
  ``content``.
- Inline images: there is no ``cid`` on the wire, the ``filename`` *is* the content id.
  A ``cid`` given on input becomes the filename that is sent.
- ``reply_to``: ``email/send`` has no such field; it is sent as a ``Reply-To`` custom header.
- Templates: ``template/add`` takes ``id`` (chosen by the caller) and ``template_name``;
  ``template_variables`` is an object of sample values (a list of names is accepted).
- Activity search: the email id filter is ``search_email_id`` (``email_id`` accepted).
- Suppressions use ``email_address`` (an address or a whole domain).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from outbox.core.smtp2go.checks import (
    E164,
    FIELD_NAME,
    FORBIDDEN_HEADERS,
    MAX_EMAIL_REQUEST_BYTES,
    MAX_HEADER_LINE,
    MAX_RECIPIENTS,
    RECIPIENTS_ROOM,
    WHITESPACE,
    EmailAddress,
    HeaderText,
    HttpURL,
    Schedule,
    Subject,
    as_list,
    base64_size,
    check_mimetype,
    fail,
    file_too_large,
    json_object,
    looks_like_mime,
    too_large,
    with_mimetype,
)
from outbox.core.text import wire_json

__all__ = [
    "Attachment",
    "BatchSend",
    "CustomHeader",
    "EmailSend",
    "Inline",
    "MimeSend",
    "SmsSend",
    "WireModel",
]


class WireModel(BaseModel):
    """A request body: unknown fields refused, and :meth:`to_wire` never sends null."""

    model_config = ConfigDict(extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The JSON body for the API: no ``None``, no empty lists or objects at the top."""
        data = self.model_dump(mode="json", exclude_none=True)
        return {key: value for key, value in data.items() if value != [] and value != {}}


#: Every way a file's content can be given to a producer (a ``path`` is read by the
#: producer, in the caller's process, and never reaches a model or a worker).
FILE_SOURCES = "fileblob (base64 text), url, content (bytes) or path"


class _File(WireModel):
    """A file carried in the message: base64 ``fileblob`` or a ``url`` the API fetches.

    ``content``, the file's own bytes, is accepted on input and sent as ``fileblob``.
    """

    filename: Annotated[HeaderText, Field(min_length=1, max_length=255)]
    #: Guessed from the filename when left out.
    mimetype: Annotated[str, AfterValidator(check_mimetype)] = Field(
        default="", validate_default=True
    )
    fileblob: str | None = None
    url: HttpURL | None = None
    #: Input only: base64-encoded into ``fileblob``, then dropped.
    content: bytes | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        """An unknown key is a guess at the shape: say what the shape is."""
        if isinstance(data, Mapping):
            what = f"an {cls.__name__.lower()}"
            message = (
                f"not a field of {what}: it takes filename, mimetype (optional) and one "
                f"of {FILE_SOURCES}"
            )
            fail(
                cls.__name__,
                [((str(key),), message, data[key]) for key in data if key not in cls.model_fields],
            )
        return with_mimetype(data)

    @field_validator("content", mode="before")
    @classmethod
    def _raw_bytes(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "must be bytes, the file's own content (text.encode() for a text file); "
                "base64 text goes in fileblob"
            )
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        if value is not None and not isinstance(value, bytes):
            raise ValueError(f"must be bytes, the file's own content, not {type(value).__name__}")
        if value == b"":
            raise ValueError("must not be empty")
        return value

    @field_validator("fileblob")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        compact = WHITESPACE.sub("", value)
        if not compact:
            raise ValueError("must not be empty")
        try:
            binascii.a2b_base64(compact, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "is not valid base64; give the file's bytes as content, or a url"
            ) from None
        return compact

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = sum(source is not None for source in (self.fileblob, self.url, self.content))
        if given != 1:
            name = "content" if self.content is not None else "fileblob"
            message = f"give {'one' if not given else 'only one'} of {FILE_SOURCES}"
            fail(type(self).__name__, [((name,), message, None)])
        if self.content is not None:
            self.fileblob = base64.b64encode(self.content).decode("ascii")
            self.content = None  # sent as the fileblob: not kept twice
        return self

    @property
    def size(self) -> int:
        """Bytes the file adds to the message: its base64 text as sent (0 for a URL)."""
        return len(self.fileblob) if self.fileblob else 0

    @property
    def raw_size(self) -> int:
        """The file's own bytes, as on disk (0 for a URL)."""
        if not self.fileblob:
            return 0
        return len(self.fileblob) // 4 * 3 - self.fileblob[-2:].count("=")


class Attachment(_File):
    """An attached file; ``mimetype`` defaults to a guess from the filename."""


class Inline(_File):
    """An inline image. The ``filename`` is its content id: ``<img src="cid:FILENAME">``.

    The reference's ``cid`` is accepted for friendliness and becomes the filename that
    is sent (the API has no ``cid`` field), so HTML written for the cid keeps working.
    """

    cid: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _cid_is_filename(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("cid"):
            cid = str(data["cid"]).strip().removeprefix("<").removesuffix(">")
            data = dict(with_mimetype(data))  # from the file's name, before it is the cid
            data["cid"] = cid
            data["filename"] = cid
        return data


class CustomHeader(WireModel):
    """One extra header; its line, ``Name: value``, at most RFC 5322's 998 characters."""

    header: Annotated[str, Field(min_length=1, max_length=MAX_HEADER_LINE - 2)]
    value: HeaderText

    @model_validator(mode="after")
    def _one_line(self) -> Self:
        length = len(self.header) + 2 + len(self.value)
        if length > MAX_HEADER_LINE:
            message = (
                f"the header line would be {length} characters; RFC 5322 allows "
                f"{MAX_HEADER_LINE} (name, colon, space and value)"
            )
            fail("CustomHeader", [(("value",), message, self.value)])
        return self

    @field_validator("header")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not FIELD_NAME.fullmatch(value):
            raise ValueError(f"not a header name (printable ASCII, no spaces or colons): {value!r}")
        if value.lower() in FORBIDDEN_HEADERS:
            raise ValueError(f"{value} may not be set as a custom header")
        return value


class EmailSend(WireModel):
    """The body of ``email/send`` (and one item of ``email/batch``)."""

    sender: EmailAddress
    to: Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_RECIPIENTS)]
    cc: Annotated[list[EmailAddress], Field(max_length=MAX_RECIPIENTS)] = []
    bcc: Annotated[list[EmailAddress], Field(max_length=MAX_RECIPIENTS)] = []
    subject: Subject | None = None
    html_body: str | None = None
    text_body: str | None = None
    template_id: Annotated[str, Field(min_length=1)] | None = None
    template_data: Annotated[dict[str, Any], AfterValidator(json_object)] | None = None
    custom_headers: list[CustomHeader] = []
    attachments: list[Attachment] = []
    inlines: list[Inline] = []
    #: Sent as a ``Reply-To`` custom header: ``email/send`` has no reply_to field.
    reply_to: EmailAddress | None = None
    #: Naive times are UTC; the API refuses times more than 3 days ahead (it is not
    #: checked here: outbox parks a later `send_at` itself and never sends `schedule`).
    schedule: Schedule | None = None
    fastaccept: bool | None = None

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return as_list(value)

    @field_validator("custom_headers", mode="before")
    @classmethod
    def _headers_from_mapping(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return [{"header": k, "value": v} for k, v in value.items()]
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str, Any]] = []
        if not (self.html_body or self.text_body or self.template_id):
            problems.append((("html_body",), "give html_body, text_body or template_id", None))
        if self.reply_to and any(h.header.lower() == "reply-to" for h in self.custom_headers):
            problems.append((("reply_to",), "also set as a Reply-To custom header", self.reply_to))
        if self.reply_to and len("Reply-To: ") + len(self.reply_to) > MAX_HEADER_LINE:
            message = f"travels as a header line: at most {MAX_HEADER_LINE} characters"
            problems.append((("reply_to",), message, self.reply_to))
        size = self.request_bytes
        if size > MAX_EMAIL_REQUEST_BYTES - RECIPIENTS_ROOM:
            problems.append(self._too_large(size))
        fail("EmailSend", problems)
        return self

    def _too_large(self, size: int) -> tuple[tuple[str | int, ...], str, Any]:
        """The problem with a body over the limit, under the file that takes it over (in
        the order given), or the largest other field when the rest is over on its own."""
        room = MAX_EMAIL_REQUEST_BYTES - RECIPIENTS_ROOM
        files = [
            ((name, i), file)
            for name, given in (("attachments", self.attachments), ("inlines", self.inlines))
            for i, file in enumerate(given)
        ]
        used = size - sum(file.size for _, file in files)  # everything but the files
        for loc, file in files if used <= room else []:
            if used + file.size > room:
                left = room - used
                message = file_too_large("email/send", size, file.filename, file.raw_size, left)
                return loc, message, file.filename
            used += file.size
        part, part_size = max(self._parts().items(), key=lambda kv: kv[1])
        return (part,), too_large("email/send", size, part, part_size), size

    def _parts(self) -> dict[str, int]:
        """The bytes each large field adds to the request (files as their base64)."""
        return {
            "subject": len(self.subject.encode()) if self.subject else 0,
            "html_body": len(self.html_body.encode()) if self.html_body else 0,
            "text_body": len(self.text_body.encode()) if self.text_body else 0,
            "attachments": sum(f.size for f in self.attachments),
            "inlines": sum(f.size for f in self.inlines),
            "custom_headers": sum(
                len(h.header) + len(h.value.encode()) for h in self.custom_headers
            ),
            "template_data": (
                len(json.dumps(self.template_data, ensure_ascii=False).encode())
                if self.template_data
                else 0
            ),
        }

    @property
    def request_bytes(self) -> int:
        """The body's size as the client sends it (compact JSON, UTF-8), for the request
        limit. Measured exactly only when it could be near: JSON's escapes make a text
        at most six times its UTF-8 bytes."""
        size = sum(self._parts().values())
        if size * 6 < MAX_EMAIL_REQUEST_BYTES - RECIPIENTS_ROOM:
            return size
        return len(wire_json(self.to_wire()))

    def to_wire(self) -> dict[str, Any]:
        data = super().to_wire()
        reply_to = data.pop("reply_to", None)
        if reply_to:
            data.setdefault("custom_headers", []).append({"header": "Reply-To", "value": reply_to})
        return data


class MimeSend(WireModel):
    """The body of ``email/mime``: a complete MIME message.

    ``mime_email`` may be given as the raw message or base64 of it; it is kept raw (so
    a header can still be prepended) and :meth:`to_wire` sends base64, as the API asks.
    """

    mime_email: Annotated[str, Field(min_length=1)]
    schedule: Schedule | None = None
    fastaccept: bool | None = None

    @field_validator("mime_email")
    @classmethod
    def _raw_message(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not looks_like_mime(value):
            try:
                decoded = binascii.a2b_base64(WHITESPACE.sub("", value), strict_mode=True)
            except (binascii.Error, ValueError):
                raise ValueError("is neither a MIME message nor base64 of one") from None
            value = decoded.decode("utf-8", errors="surrogateescape")
            if not looks_like_mime(value):
                raise ValueError("does not decode to a MIME message")
        raw = len(value.encode("utf-8", errors="surrogateescape"))
        sent = base64_size(raw) + len('{"mime_email":""}')  # it travels base64-encoded
        if sent > MAX_EMAIL_REQUEST_BYTES:
            raise ValueError(too_large("email/mime", sent, "the message", sent))
        return value

    def to_wire(self) -> dict[str, Any]:
        data = super().to_wire()
        raw = self.mime_email.encode("utf-8", errors="surrogateescape")
        data["mime_email"] = base64.b64encode(raw).decode("ascii")
        return data


class BatchSend(WireModel):
    """The body of ``email/batch``: several ``email/send`` objects in one call."""

    emails: Annotated[list[EmailSend], Field(min_length=1)]

    def to_wire(self) -> dict[str, Any]:
        return {"emails": [email.to_wire() for email in self.emails]}


class SmsSend(WireModel):
    """The body of ``sms/send``; ``to`` and ``message`` are accepted as input names."""

    destination: Annotated[list[E164], Field(min_length=1, max_length=MAX_RECIPIENTS)] = Field(
        validation_alias=AliasChoices("destination", "to")
    )
    content: Annotated[str, Field(min_length=1)] = Field(
        validation_alias=AliasChoices("content", "message")
    )
    #: A number in E.164 form; the account's default sender when left out.
    sender: E164 | None = None

    @field_validator("destination", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return as_list(value)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value
