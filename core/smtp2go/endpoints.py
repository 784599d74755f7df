"""Every SMTP2GO v3 endpoint the client calls, as one table: path, request, answer.

``client.call(EMAIL_SEND, request)`` sends ``request`` (a model of the endpoint's, or a
mapping validated as one) and returns the endpoint's answer model. A new endpoint is one
row here, not a method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from outbox.core.smtp2go.answers import (
    ActivitySearchResult,
    APIResult,
    BatchResult,
    ResultModel,
    SendResult,
    SmsSendResult,
)
from outbox.core.smtp2go.management import (
    ActivitySearch,
    SmsQuery,
    StatsQuery,
    SuppressionAdd,
    SuppressionRemove,
    SuppressionView,
    TemplateAdd,
    TemplateDelete,
    TemplateEdit,
    TemplateSearch,
    TemplateView,
    WebhookAdd,
    WebhookEdit,
    WebhookRemove,
)
from outbox.core.smtp2go.requests import BatchSend, EmailSend, MimeSend, SmsSend, WireModel

__all__ = [
    "ACTIVITY_SEARCH",
    "EMAIL_BATCH",
    "EMAIL_MIME",
    "EMAIL_SEND",
    "ENDPOINTS",
    "SMS_SEND",
    "SMS_SUMMARY",
    "SMS_VIEW_RECEIVED",
    "SMS_VIEW_SENT",
    "STATS_EMAIL_BOUNCES",
    "STATS_EMAIL_CYCLE",
    "STATS_EMAIL_HISTORY",
    "STATS_EMAIL_SPAM",
    "STATS_EMAIL_SUMMARY",
    "STATS_EMAIL_UNSUBS",
    "SUPPRESSION_ADD",
    "SUPPRESSION_REMOVE",
    "SUPPRESSION_VIEW",
    "TEMPLATE_ADD",
    "TEMPLATE_DELETE",
    "TEMPLATE_EDIT",
    "TEMPLATE_SEARCH",
    "TEMPLATE_VIEW",
    "WEBHOOK_ADD",
    "WEBHOOK_EDIT",
    "WEBHOOK_REMOVE",
    "WEBHOOK_VIEW",
    "Endpoint",
]

R = TypeVar("R", bound=ResultModel, covariant=True)


@dataclass(frozen=True, slots=True)
class Endpoint(Generic[R]):
    #: After ``/v3/``.
    path: str
    #: The request body's model; ``None`` for endpoints that take no fields.
    request: type[WireModel] | None
    answer: type[R]


EMAIL_SEND = Endpoint("email/send", EmailSend, SendResult)
EMAIL_MIME = Endpoint("email/mime", MimeSend, SendResult)
#: One ``email_id`` per email, in order (a scheduled one: its ``schedule_id``).
EMAIL_BATCH = Endpoint("email/batch", BatchSend, BatchResult)
#: Up to 100 destinations; over 160 characters costs several units.
SMS_SEND = Endpoint("sms/send", SmsSend, SmsSendResult)
#: The SMS views put their ``request_id`` inside ``data`` (read either way).
SMS_VIEW_RECEIVED = Endpoint("sms/view-received", SmsQuery, APIResult)
SMS_VIEW_SENT = Endpoint("sms/view-sent", SmsQuery, APIResult)
SMS_SUMMARY = Endpoint("sms/summary", SmsQuery, APIResult)
TEMPLATE_ADD = Endpoint("template/add", TemplateAdd, APIResult)
TEMPLATE_EDIT = Endpoint("template/edit", TemplateEdit, APIResult)
TEMPLATE_DELETE = Endpoint("template/delete", TemplateDelete, APIResult)
TEMPLATE_VIEW = Endpoint("template/view", TemplateView, APIResult)
TEMPLATE_SEARCH = Endpoint("template/search", TemplateSearch, APIResult)
WEBHOOK_ADD = Endpoint("webhook/add", WebhookAdd, APIResult)
#: The configured webhooks (a list lands in ``data["result"]``).
WEBHOOK_VIEW = Endpoint("webhook/view", None, APIResult)
WEBHOOK_EDIT = Endpoint("webhook/edit", WebhookEdit, APIResult)
WEBHOOK_REMOVE = Endpoint("webhook/remove", WebhookRemove, APIResult)
#: What the key may call; any key may ask, and it sends nothing (the hold probe).
API_KEYS_PERMISSIONS = Endpoint("api_keys/permissions", None, APIResult)
#: Bounces, cycle, spam and unsubscribes in one report (percentages are strings).
STATS_EMAIL_SUMMARY = Endpoint("stats/email_summary", StatsQuery, APIResult)
STATS_EMAIL_BOUNCES = Endpoint("stats/email_bounces", StatsQuery, APIResult)
#: ``cycle_start``, ``cycle_end``, ``cycle_used``, ``cycle_remaining``, ``cycle_max``.
STATS_EMAIL_CYCLE = Endpoint("stats/email_cycle", StatsQuery, APIResult)
STATS_EMAIL_HISTORY = Endpoint("stats/email_history", StatsQuery, APIResult)
STATS_EMAIL_SPAM = Endpoint("stats/email_spam", StatsQuery, APIResult)
STATS_EMAIL_UNSUBS = Endpoint("stats/email_unsubs", StatsQuery, APIResult)
#: 60 calls a minute; at most 1,000 events a page.
ACTIVITY_SEARCH = Endpoint("activity/search", ActivitySearch, ActivitySearchResult)
SUPPRESSION_ADD = Endpoint("suppression/add", SuppressionAdd, APIResult)
#: ``data`` has results, total_results and continue_token.
SUPPRESSION_VIEW = Endpoint("suppression/view", SuppressionView, APIResult)
SUPPRESSION_REMOVE = Endpoint("suppression/remove", SuppressionRemove, APIResult)

#: Every endpoint by path.
ENDPOINTS: dict[str, Endpoint[ResultModel]] = {
    e.path: e
    for e in (
        EMAIL_SEND,
        EMAIL_MIME,
        EMAIL_BATCH,
        SMS_SEND,
        SMS_VIEW_RECEIVED,
        SMS_VIEW_SENT,
        SMS_SUMMARY,
        TEMPLATE_ADD,
        TEMPLATE_EDIT,
        TEMPLATE_DELETE,
        TEMPLATE_VIEW,
        TEMPLATE_SEARCH,
        WEBHOOK_ADD,
        WEBHOOK_VIEW,
        WEBHOOK_EDIT,
        WEBHOOK_REMOVE,
        STATS_EMAIL_SUMMARY,
        STATS_EMAIL_BOUNCES,
        STATS_EMAIL_CYCLE,
        STATS_EMAIL_HISTORY,
        STATS_EMAIL_SPAM,
        STATS_EMAIL_UNSUBS,
        ACTIVITY_SEARCH,
        SUPPRESSION_ADD,
        SUPPRESSION_VIEW,
        SUPPRESSION_REMOVE,
    )
}
