"""Pydantic models of the SMTP2GO v3 payloads: one definition for both ends.

Producers validate with these models (so bad input is refused before anything is
queued) and the client serialises them with :meth:`to_wire`, which never sends a
``null``: unset and empty fields are left out of the JSON body.

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
import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import getaddresses, parseaddr
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "E164",
    "FORBIDDEN_HEADERS",
    "MAX_ACTIVITY_LIMIT",
    "MAX_HEADER_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_RECIPIENTS",
    "MAX_SCHEDULE_AHEAD",
    "MAX_SUBJECT_CHARS",
    "APIResult",
    "ActivityEvent",
    "ActivitySearch",
    "ActivitySearchResult",
    "Attachment",
    "BatchItem",
    "BatchResult",
    "BatchSend",
    "CustomHeader",
    "EmailAddress",
    "EmailSend",
    "Inline",
    "MimeSend",
    "ResultModel",
    "SendResult",
    "SmsMessageStatus",
    "SmsQuery",
    "SmsSend",
    "SmsSendResult",
    "StatsQuery",
    "SuppressionAdd",
    "SuppressionRemove",
    "SuppressionView",
    "TemplateAdd",
    "TemplateDelete",
    "TemplateEdit",
    "TemplateSearch",
    "TemplateView",
    "WebhookAdd",
    "WebhookEdit",
    "WebhookRemove",
    "WireModel",
    "address_key",
    "field_errors_of",
    "validate_address",
    "validate_domain_or_address",
    "validate_schedule",
]

#: Recipients per field (``to``, ``cc`` and ``bcc`` each) in one API call.
MAX_RECIPIENTS = 100
#: Whole message: bodies, attachments and inlines (counted base64-encoded, as they
#: travel) and custom headers. The API says "50 MB"; the decimal reading is stricter.
MAX_MESSAGE_BYTES = 50_000_000
MAX_SUBJECT_CHARS = 255
#: Both the name and the value of a custom header.
MAX_HEADER_CHARS = 127
#: How far ahead ``schedule`` may be; checked by :func:`validate_schedule` at enqueue
#: time only, since a retry of a valid request must not fail later on the clock.
MAX_SCHEDULE_AHEAD = timedelta(days=3)
#: Most events one ``activity/search`` call returns.
MAX_ACTIVITY_LIMIT = 1000
#: Headers the API refuses in ``custom_headers`` (compared case-insensitively).
FORBIDDEN_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})

_LINE_BREAKS = re.compile(r"[\r\n\x00]")
#: RFC 5322 field name: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: An address whose local part is an ASCII dot-atom (RFC 5322), the shape of nearly all.
_SIMPLE_ADDR = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[^@\s]+)"
)
_ANGLE_ADDR = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>\s]+)>")
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_HTTP_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------- validators


def _no_line_breaks(value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise ValueError("must not contain CR, LF or NUL characters")
    return value


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
    if plain and len(plain["local"]) <= 64 and len(text) <= 254:
        # The common case, without the stdlib parser (~30 us an address): an ASCII
        # dot-atom local part needs no more checking, and each domain's verdict is
        # cached (a 10,000-recipient list has few domains).
        try:
            _check_domain(plain["domain"].lower())
        except EmailNotValidError as exc:
            raise ValueError(f"invalid address {text!r}: {exc}") from None
        return text
    if "<" in text or ">" in text:
        match = _ANGLE_ADDR.fullmatch(text)
        if match is None:
            raise ValueError(f"not an address of the form 'Name <addr@host>': {text!r}")
        expected = match["addr"]
    else:
        if _WHITESPACE.search(text):
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


def _e164(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError(f"not an E.164 phone number ('+' then 7 to 15 digits): {value!r}")
    return value


def _mimetype(value: str) -> str:
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


def validate_schedule(value: datetime, *, now: datetime | None = None) -> datetime:
    """Check a ``schedule`` time is in the future and at most three days ahead.

    Kept out of the models: a request that was valid when queued must stay valid on
    a retry an hour later.
    """
    when = _aware(value)
    current = _aware(now) if now is not None else datetime.now(UTC)
    if when <= current:
        raise ValueError("schedule must be in the future")
    if when - current > MAX_SCHEDULE_AHEAD:
        raise ValueError("schedule must be at most 3 days ahead")
    return when


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise ValueError("is nested too deeply to be JSON") from None
    return value


def _with_mimetype(data: Any) -> Any:
    """Fill a missing ``mimetype`` from the filename, as mail clients do."""
    if isinstance(data, Mapping) and not data.get("mimetype") and data.get("filename"):
        guessed, _ = mimetypes.guess_type(str(data["filename"]), strict=False)
        return {**data, "mimetype": guessed or "application/octet-stream"}
    return data


def _looks_like_mime(text: str) -> bool:
    """A MIME message starts with a header line; base64 never holds a colon."""
    return ":" in text.lstrip().split("\n", 1)[0]


def _as_list(value: Any) -> Any:
    """A single string where a list is expected is the list of that one string."""
    return [value] if isinstance(value, str) else value


#: An ``addr@host`` or ``Name <addr@host>`` string, checked by :func:`validate_address`.
EmailAddress = Annotated[str, AfterValidator(validate_address)]
#: A phone number in E.164 form, e.g. ``+61400000000``.
E164 = Annotated[str, AfterValidator(_e164)]
_HeaderText = Annotated[str, AfterValidator(_no_line_breaks)]
_Subject = Annotated[str, Field(max_length=MAX_SUBJECT_CHARS), AfterValidator(_no_line_breaks)]
_HttpURL = Annotated[str, AfterValidator(_http_url)]
_Schedule = Annotated[datetime, AfterValidator(_aware)]


def _fail(title: str, problems: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
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


# --------------------------------------------------------------------------- requests


class WireModel(BaseModel):
    """A request body: unknown fields refused, and :meth:`to_wire` never sends null."""

    model_config = ConfigDict(extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The JSON body for the API: no ``None``, no empty lists or objects at the top."""
        data = self.model_dump(mode="json", exclude_none=True)
        return {key: value for key, value in data.items() if value != [] and value != {}}


class _File(WireModel):
    """A file carried in the message: base64 ``fileblob`` or a ``url`` the API fetches."""

    filename: Annotated[_HeaderText, Field(min_length=1, max_length=255)]
    #: Guessed from the filename when left out.
    mimetype: Annotated[str, AfterValidator(_mimetype)] = Field(default="", validate_default=True)
    fileblob: str | None = None
    url: _HttpURL | None = None

    @model_validator(mode="before")
    @classmethod
    def _guess_mimetype(cls, data: Any) -> Any:
        return _with_mimetype(data)

    @field_validator("fileblob")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        compact = _WHITESPACE.sub("", value)
        if not compact:
            raise ValueError("must not be empty")
        try:
            binascii.a2b_base64(compact, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        return compact

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.fileblob is None) == (self.url is None):
            _fail(
                type(self).__name__,
                [(("fileblob",), "give exactly one of fileblob or url", self.fileblob)],
            )
        return self

    @property
    def size(self) -> int:
        """Bytes the file adds to the message: its base64 text as sent (0 for a URL)."""
        return len(self.fileblob) if self.fileblob else 0


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
            data = dict(_with_mimetype(data))
            data["cid"] = cid
            data["filename"] = cid
        return data


class CustomHeader(WireModel):
    """One extra header; the API caps name and value at 127 characters each."""

    header: Annotated[str, Field(min_length=1, max_length=MAX_HEADER_CHARS)]
    value: Annotated[_HeaderText, Field(max_length=MAX_HEADER_CHARS)]

    @field_validator("header")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _FIELD_NAME.fullmatch(value):
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
    subject: _Subject | None = None
    html_body: str | None = None
    text_body: str | None = None
    template_id: Annotated[str, Field(min_length=1)] | None = None
    template_data: Annotated[dict[str, Any], AfterValidator(_json_object)] | None = None
    custom_headers: list[CustomHeader] = []
    attachments: list[Attachment] = []
    inlines: list[Inline] = []
    #: Sent as a ``Reply-To`` custom header: ``email/send`` has no reply_to field.
    reply_to: EmailAddress | None = None
    #: Naive times are UTC. See :func:`validate_schedule` for the 3-day window.
    schedule: _Schedule | None = None
    fastaccept: bool | None = None

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

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
        if not self.template_id and not self.subject:
            problems.append((("subject",), "a subject is required without template_id", None))
        if self.reply_to and any(h.header.lower() == "reply-to" for h in self.custom_headers):
            problems.append((("reply_to",), "also set as a Reply-To custom header", self.reply_to))
        if self.reply_to and len(self.reply_to) > MAX_HEADER_CHARS:
            message = f"travels as a header value: at most {MAX_HEADER_CHARS} characters"
            problems.append((("reply_to",), message, self.reply_to))
        if self.size > MAX_MESSAGE_BYTES:
            problems.append(
                ((), f"message is {self.size} bytes, over {MAX_MESSAGE_BYTES}", self.size)
            )
        _fail("EmailSend", problems)
        return self

    @property
    def size(self) -> int:
        """Bytes counted against :data:`MAX_MESSAGE_BYTES` (URL attachments excluded).

        Template data counts as its JSON: it is rendered into the message, and a
        request that large is refused by the API anyway.
        """
        texts = (self.subject, self.html_body, self.text_body)
        total = sum(len(text.encode()) for text in texts if text)
        total += sum(f.size for f in self.attachments) + sum(f.size for f in self.inlines)
        total += sum(len(h.header) + len(h.value.encode()) + 4 for h in self.custom_headers)
        if self.template_data:
            total += len(json.dumps(self.template_data, ensure_ascii=False).encode())
        return total

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
    schedule: _Schedule | None = None
    fastaccept: bool | None = None

    @field_validator("mime_email")
    @classmethod
    def _raw_message(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not _looks_like_mime(value):
            try:
                decoded = binascii.a2b_base64(_WHITESPACE.sub("", value), strict_mode=True)
            except (binascii.Error, ValueError):
                raise ValueError("is neither a MIME message nor base64 of one") from None
            value = decoded.decode("utf-8", errors="surrogateescape")
            if not _looks_like_mime(value):
                raise ValueError("does not decode to a MIME message")
        size = len(value.encode("utf-8", errors="surrogateescape"))
        if size > MAX_MESSAGE_BYTES:
            raise ValueError(f"message is {size} bytes, over {MAX_MESSAGE_BYTES}")
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
        return _as_list(value)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def _template_variables(value: Any) -> Any:
    """A list of variable names (the reference's shape) becomes the API's object."""
    if isinstance(value, list | tuple):
        return {str(name): "" for name in value}
    return value


_TemplateId = Annotated[str, Field(min_length=5, max_length=24)]
_TemplateName = Annotated[str, Field(min_length=1, max_length=64)]
_TemplateVariables = Annotated[
    dict[str, Any], BeforeValidator(_template_variables), AfterValidator(_json_object)
]


class TemplateAdd(WireModel):
    """``template/add``: the caller chooses the ``id`` (5 to 24 characters, case-sensitive)."""

    id: _TemplateId
    template_name: _TemplateName
    subject: Annotated[_HeaderText, Field(min_length=1)]
    html_body: str
    text_body: str
    template_variables: _TemplateVariables | None = None
    tags: list[str] | None = None


class TemplateEdit(WireModel):
    """``template/edit``: only the fields given are changed; ``new_id`` renames."""

    id: Annotated[str, Field(min_length=1)]
    new_id: _TemplateId | None = None
    template_name: _TemplateName | None = None
    subject: _HeaderText | None = None
    html_body: str | None = None
    text_body: str | None = None
    template_variables: _TemplateVariables | None = None
    tags: list[str] | None = None


class TemplateView(WireModel):
    """``template/view``."""

    id: Annotated[str, Field(min_length=1)]


class TemplateDelete(WireModel):
    """``template/delete``."""

    id: Annotated[str, Field(min_length=1)]


class TemplateSearch(WireModel):
    """``template/search``; every filter optional."""

    search_terms: list[str] | None = None
    tags: list[str] | None = None
    fuzzy_search: bool | None = None
    sort_direction: Literal["asc", "desc"] | None = None
    page_size: Annotated[int, Field(ge=1)] | None = None
    continue_token: str | None = None


class _WebhookOptions(WireModel):
    """What ``webhook/add`` and ``webhook/edit`` share."""

    events: list[str] | None = None
    sms_events: list[str] | None = None
    headers: list[str] | None = None
    usernames: list[str] | None = None
    output_format: Literal["form", "json"] | None = None
    auth_header_type: Literal["bearer", "basic"] | None = None
    #: A bearer token or ``base64(user:pass)``; hidden in reprs, revealed only on the wire.
    auth_header_value: SecretStr | None = None

    def to_wire(self) -> dict[str, Any]:
        data = super().to_wire()
        if self.auth_header_value is not None:
            data["auth_header_value"] = self.auth_header_value.get_secret_value()
        return data


class WebhookAdd(_WebhookOptions):
    """``webhook/add``. Webhooks are not signed: protect them with ``auth_header_*``."""

    url: _HttpURL


class WebhookEdit(_WebhookOptions):
    """``webhook/edit``: the integer ``id`` plus the fields to change."""

    id: int
    url: _HttpURL | None = None


class WebhookRemove(WireModel):
    """``webhook/remove``."""

    id: int


class SuppressionAdd(WireModel):
    """``suppression/add``: an address, or a whole domain."""

    email_address: Annotated[str, AfterValidator(validate_domain_or_address)]
    block_description: str | None = None


class SuppressionView(WireModel):
    """``suppression/view``; every filter optional, paged with ``continue_token``."""

    email_address: str | None = None
    start_date: datetime | date | None = None
    end_date: datetime | date | None = None
    fuzzy: bool | None = None
    reason: str | None = None
    reasons: list[str] | None = None
    recipient: str | None = None
    recipients: list[str] | None = None
    sort: Literal["asc", "desc"] | None = None
    suppression_type: str | None = None
    suppression_types: list[str] | None = None
    wildcard: str | None = None
    continue_token: str | None = None


class SuppressionRemove(WireModel):
    """``suppression/remove``: which block types (``manual``, ``spam``, ...) to lift."""

    email_address: Annotated[str, AfterValidator(validate_domain_or_address)]
    reasons: Annotated[list[str], Field(min_length=1)]


class ActivitySearch(WireModel):
    """``activity/search`` (the API allows 60 calls a minute)."""

    start_date: datetime | date | None = None
    end_date: datetime | date | None = None
    search: str | None = None
    search_subject: str | None = None
    search_sender: str | None = None
    search_recipient: str | None = None
    search_email_id: str | None = Field(
        default=None, validation_alias=AliasChoices("search_email_id", "email_id")
    )
    search_usernames: list[str] | None = None
    event_types: list[str] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_ACTIVITY_LIMIT)] | None = None
    continue_token: str | None = None
    only_latest: bool | None = None
    include_headers: bool | None = None
    #: Header names the API parses out of each event's headers into ``custom_headers``.
    custom_headers: list[str] | None = None


class StatsQuery(WireModel):
    """Filters of the ``stats/*`` calls (each call uses the ones it knows)."""

    username: str | None = None
    start_date: datetime | date | None = None
    end_date: datetime | date | None = None
    group_by: Literal["email_address", "username", "domain", "subaccount"] | None = None


class SmsQuery(WireModel):
    """Filters of ``sms/view-received``, ``sms/view-sent`` and ``sms/summary``."""

    start_date: datetime | date | None = None
    end_date: datetime | date | None = None
    username: str | None = None


# --------------------------------------------------------------------------- responses


class ResultModel(BaseModel):
    """An API answer: tolerant, keeps fields it does not know."""

    model_config = ConfigDict(extra="allow")

    request_id: str = ""

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        """Build from ``{"request_id", "data"}``; some calls put request_id inside data."""
        data = payload.get("data")
        inner = data.get("request_id") if isinstance(data, Mapping) else None
        request_id = str(payload.get("request_id") or inner or "")
        return cls._from_data(request_id, data)

    @classmethod
    def _from_data(cls, request_id: str, data: Any) -> Self:
        fields = dict(data) if isinstance(data, Mapping) else {}
        fields["request_id"] = request_id
        return cls.model_validate(fields)


class SendResult(ResultModel):
    """``email/send`` / ``email/mime``: a 200 may still report failed recipients."""

    succeeded: int = 0
    failed: int = 0
    failures: list[str] = []
    email_id: str | None = None
    schedule_id: str | None = None

    @field_validator("failures", mode="before")
    @classmethod
    def _as_strings(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
        return [str(value)]

    @property
    def partial_failure(self) -> bool:
        """True when the API accepted the call but reports failures; the caller decides."""
        return self.failed > 0 or bool(self.failures)


class BatchItem(BaseModel):
    """One answer of ``email/batch``, in the order of the request's emails."""

    model_config = ConfigDict(extra="allow")

    email_id: str | None = None
    schedule_id: str | None = None


class BatchResult(ResultModel):
    """``email/batch``: one item per email sent, in order."""

    items: list[BatchItem] = []

    @classmethod
    def _from_data(cls, request_id: str, data: Any) -> Self:
        items: Any = data
        if isinstance(data, Mapping):
            items = next(
                (data[k] for k in ("emails", "results", "items") if isinstance(data.get(k), list)),
                [{"email_id": e} for e in data.get("email_ids") or []],
            )
        if not isinstance(items, list):
            items = []
        items = [{"email_id": i} if isinstance(i, str) else i for i in items]
        return cls.model_validate({"request_id": request_id, "items": items})

    @computed_field  # type: ignore[prop-decorator]
    @property
    def email_ids(self) -> list[str | None]:
        """The ``email_id`` of each email, in request order (None for a scheduled one)."""
        return [item.email_id for item in self.items]


class SmsMessageStatus(BaseModel):
    """One SMS of ``sms/send``'s answer."""

    model_config = ConfigDict(extra="allow")

    destination: str = ""
    message_id: str | None = None
    status: str | None = None


class SmsSendResult(ResultModel):
    """``sms/send``: counts by status, and one entry per destination."""

    total_sent: int = 0
    messages: list[SmsMessageStatus] = []
    statuses: dict[str, Any] = {}


class ActivityEvent(BaseModel):
    """One event of ``activity/search``; unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    email_id: str | None = None
    recipient: str | None = None
    event: str | None = None
    date: str | None = None
    subject: str | None = None
    sender: str | None = None
    #: The raw headers when ``include_headers`` was asked (a string in the real API).
    headers: Any = None
    #: The headers named in the request's ``custom_headers``, parsed out by the API.
    custom_headers: dict[str, Any] = {}

    def header(self, name: str) -> str | None:
        """The value of header ``name`` from ``custom_headers`` or the raw ``headers``."""
        wanted = name.lower()
        for source in (self.custom_headers, self.headers):
            if isinstance(source, Mapping):
                for key, value in source.items():
                    if str(key).lower() == wanted:
                        return str(value)
            elif isinstance(source, list):
                for item in source:
                    if isinstance(item, Mapping) and str(item.get("header", "")).lower() == wanted:
                        return str(item.get("value", ""))
            elif isinstance(source, str):
                for line in source.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and key.strip().lower() == wanted:
                        return value.strip()
        return None


class ActivitySearchResult(ResultModel):
    """``activity/search``: at most 1,000 events, ``continue_token`` for the rest."""

    events: list[ActivityEvent] = []
    total_events: int = 0
    continue_token: str | None = None


class APIResult(ResultModel):
    """Any other answer (stats, templates, webhooks, suppressions, SMS views).

    ``data`` is always an object: an answer whose data is a list or a string (e.g.
    ``template/delete``) is kept under ``data["result"]``.
    """

    data: dict[str, Any] = {}

    @classmethod
    def _from_data(cls, request_id: str, data: Any) -> Self:
        body: dict[str, Any] = {} if data is None else {"result": data}
        if isinstance(data, Mapping):
            body = dict(data)
        return cls.model_validate({"request_id": request_id, "data": body})
