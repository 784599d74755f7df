"""The request bodies of SMTP2GO's account endpoints: templates, webhooks, suppressions,
activity, statistics and SMS history (the sending ones are in :mod:`.requests`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, SecretStr

from outbox.core.smtp2go.checks import (
    MAX_ACTIVITY_LIMIT,
    HeaderText,
    HttpURL,
    json_object,
    validate_domain_or_address,
)
from outbox.core.smtp2go.requests import WireModel

__all__ = [
    "ActivitySearch",
    "SmsQuery",
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
]


def _template_variables(value: Any) -> Any:
    """A list of variable names (the reference's shape) becomes the API's object."""
    if isinstance(value, list | tuple):
        return {str(name): "" for name in value}
    return value


_TemplateId = Annotated[str, Field(min_length=5, max_length=24)]
_TemplateName = Annotated[str, Field(min_length=1, max_length=64)]
_TemplateVariables = Annotated[
    dict[str, Any], BeforeValidator(_template_variables), AfterValidator(json_object)
]


class TemplateAdd(WireModel):
    """``template/add``: the caller chooses the ``id`` (5 to 24 characters, case-sensitive)."""

    id: _TemplateId
    template_name: _TemplateName
    subject: Annotated[HeaderText, Field(min_length=1)]
    html_body: str
    text_body: str
    template_variables: _TemplateVariables | None = None
    tags: list[str] | None = None


class TemplateEdit(WireModel):
    """``template/edit``: only the fields given are changed; ``new_id`` renames."""

    id: Annotated[str, Field(min_length=1)]
    new_id: _TemplateId | None = None
    template_name: _TemplateName | None = None
    subject: HeaderText | None = None
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

    url: HttpURL


class WebhookEdit(_WebhookOptions):
    """``webhook/edit``: the integer ``id`` plus the fields to change."""

    id: int
    url: HttpURL | None = None


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
