"""The answers of the SMTP2GO v3 endpoints, as tolerant pydantic models.

An answer keeps fields it does not know, and some endpoints put ``request_id`` inside
``data`` (the SMS views): :meth:`ResultModel.from_payload` reads either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, computed_field, field_validator

__all__ = [
    "APIResult",
    "ActivityEvent",
    "ActivitySearchResult",
    "BatchItem",
    "BatchResult",
    "ResultModel",
    "SendResult",
    "SmsMessageStatus",
    "SmsSendResult",
]


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
    """``email/send`` / ``email/mime``: a 200 that may still say the email was refused.

    ``succeeded`` and ``failed`` count emails, not recipients (a request is one email);
    ``failures`` are the API's error messages. Both counts are absent (``None``) in the
    answer to ``fastaccept``, which comes before the email is checked.
    """

    succeeded: int | None = None
    failed: int | None = None
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
    def refused(self) -> bool:
        """The API took the request and refused the email (nothing will be delivered)."""
        return self.succeeded == 0 and (bool(self.failed) or bool(self.failures))


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
