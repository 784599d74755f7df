"""The SMTP2GO v3 HTTP client: one request per call, typed answers, the project's errors.

It never retries: the Celery task owns the policy (``raise self.retry(...)``) so a
retry survives a worker restart and frees the worker meanwhile. Each method takes a
request model from :mod:`worker.smtp2go.models` (or its fields as keywords), sends
``model.to_wire()`` and returns a typed result. A 200 that reports failed recipients
is returned, not raised (see :attr:`SendResult.partial_failure`).

The key travels only in the ``X-Smtp2go-Api-Key`` header: never in a body, a repr,
an error message or a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from httpx import _models as _httpx_models
from pydantic import ValidationError

from outbox.errors import RequestTimeout, TransportError, UnexpectedStatusError, redact
from outbox.worker.smtp2go.models import (
    ActivitySearch,
    ActivitySearchResult,
    APIResult,
    BatchResult,
    BatchSend,
    EmailSend,
    MimeSend,
    ResultModel,
    SendResult,
    SmsQuery,
    SmsSend,
    SmsSendResult,
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
    WireModel,
)
from outbox.worker.smtp2go.responses import error_from_response

if TYPE_CHECKING:
    from outbox.worker.settings import Settings

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_TIMEOUT",
    "SEND_PATHS",
    "SMTP2GOClient",
    "client_from_settings",
]

logger = logging.getLogger(__name__)

#: The only place the key is sent.
API_KEY_HEADER = "X-Smtp2go-Api-Key"
#: Connecting and waiting for a pooled connection should be quick; SMTP2GO may take a
#: while to answer a send with large attachments.
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 5.0
DEFAULT_TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT, read=30.0, write=30.0, pool=POOL_TIMEOUT)

#: Endpoints that send (and so share the send rate limit and may duplicate on retry).
SEND_PATHS = frozenset({"email/send", "email/mime", "email/batch", "sms/send"})

# httpx masks only Authorization headers in the repr of Headers; add ours, so a
# logged request or client never shows the key.
_sensitive = getattr(_httpx_models, "SENSITIVE_HEADERS", None)
if isinstance(_sensitive, set):
    _sensitive.add(API_KEY_HEADER.lower())

#: httpx errors raised before any byte of the request could have reached the server.
_SURELY_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)

R = TypeVar("R", bound=ResultModel)
M = TypeVar("M", bound=WireModel)


def _timeout(value: float | httpx.Timeout) -> httpx.Timeout:
    """A float is the read/write timeout; connect and pool waits stay short."""
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(value, connect=min(value, CONNECT_TIMEOUT), pool=min(value, POOL_TIMEOUT))


def _model(cls: type[M], request: M | Mapping[str, Any] | None, fields: dict[str, Any]) -> M:
    """The request model from an instance, a mapping or keyword fields (validated)."""
    if request is not None and fields:
        raise TypeError(f"give a {cls.__name__} or its fields as keywords, not both")
    if isinstance(request, cls):
        return request
    return cls.model_validate(request if request is not None else fields)


class SMTP2GOClient:
    """A synchronous SMTP2GO v3 client over one pooled, keep-alive ``httpx.Client``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 100,
        user_agent: str = "outbox/0.1",
    ) -> None:
        if not api_key or not api_key.strip():
            raise ValueError("api_key is empty")
        if any(ch in api_key for ch in "\r\n\x00"):
            raise ValueError("api_key contains control characters")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers={
                API_KEY_HEADER: api_key,
                "Accept": "application/json",
                "User-Agent": user_agent,
            },
            timeout=_timeout(timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # ------------------------------------------------------------------ the one boundary

    def _request(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path``; the only place httpx exceptions become ours."""
        path = path.strip("/")
        started = time.monotonic()
        try:
            response = self._http.post(path, json=dict(body))
        except httpx.TimeoutException as exc:
            raise RequestTimeout(
                self._describe(exc, path), ambiguous=not isinstance(exc, _SURELY_NOT_SENT)
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                self._describe(exc, path), ambiguous=not isinstance(exc, _SURELY_NOT_SENT)
            ) from exc
        except httpx.HTTPError as exc:
            # DecodingError and the like: an answer came back, so the request arrived.
            raise TransportError(self._describe(exc, path), ambiguous=True) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        if not response.is_success:
            error = error_from_response(response, secrets=(self._api_key,))
            logger.debug(
                "POST %s -> %s %s in %.0f ms (request_id=%s)",
                path,
                response.status_code,
                type(error).__name__,
                elapsed_ms,
                error.request_id,
            )
            raise error
        try:
            payload: Any = response.json()
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise UnexpectedStatusError(
                f"{path} answered {response.status_code} without a JSON object",
                status_code=response.status_code,
            )
        logger.debug(
            "POST %s -> %s in %.0f ms (request_id=%s)",
            path,
            response.status_code,
            elapsed_ms,
            payload.get("request_id"),
        )
        return payload

    def _describe(self, exc: Exception, path: str) -> str:
        detail = redact(str(exc), self._api_key) or "no detail"
        return f"{type(exc).__name__} on POST {path}: {detail}"

    def _call(self, path: str, body: WireModel | Mapping[str, Any], result: type[R]) -> R:
        wire = body.to_wire() if isinstance(body, WireModel) else dict(body)
        payload = self._request(path, wire)
        try:
            return result.from_payload(payload)
        except ValidationError as exc:
            raise UnexpectedStatusError(
                f"{path} answered with a body that does not parse as {result.__name__}: "
                f"{exc.error_count()} problem(s)",
                status_code=200,
                request_id=str(payload.get("request_id") or "") or None,
            ) from exc

    def request(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST any endpoint (e.g. ``"email/send"``) and return the whole JSON answer."""
        return self._request(path, body or {})

    # ------------------------------------------------------------------ email

    def send_email(
        self, request: EmailSend | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> SendResult:
        """``email/send``. Failed recipients in a 200 come back in the result."""
        return self._call("email/send", _model(EmailSend, request, fields), SendResult)

    def send_mime(
        self, request: MimeSend | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> SendResult:
        """``email/mime``: a complete MIME message."""
        return self._call("email/mime", _model(MimeSend, request, fields), SendResult)

    def send_batch(
        self, request: BatchSend | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> BatchResult:
        """``email/batch``: one ``email_id`` per email, in order."""
        return self._call("email/batch", _model(BatchSend, request, fields), BatchResult)

    # ------------------------------------------------------------------ templates

    def template_add(
        self, request: TemplateAdd | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call("template/add", _model(TemplateAdd, request, fields), APIResult)

    def template_edit(
        self, request: TemplateEdit | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call("template/edit", _model(TemplateEdit, request, fields), APIResult)

    def template_delete(
        self, request: TemplateDelete | Mapping[str, Any] | str | None = None, /, **fields: Any
    ) -> APIResult:
        """``template/delete``; ``request`` may be the template id."""
        if isinstance(request, str):
            request = TemplateDelete(id=request)
        return self._call("template/delete", _model(TemplateDelete, request, fields), APIResult)

    def template_view(
        self, request: TemplateView | Mapping[str, Any] | str | None = None, /, **fields: Any
    ) -> APIResult:
        """``template/view``; ``request`` may be the template id."""
        if isinstance(request, str):
            request = TemplateView(id=request)
        return self._call("template/view", _model(TemplateView, request, fields), APIResult)

    def template_search(
        self, request: TemplateSearch | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """``template/search``: ``data`` has templates, total_count and continue_token."""
        return self._call("template/search", _model(TemplateSearch, request, fields), APIResult)

    # ------------------------------------------------------------------ webhooks

    def webhook_add(
        self, request: WebhookAdd | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call("webhook/add", _model(WebhookAdd, request, fields), APIResult)

    def webhook_view(self) -> APIResult:
        """``webhook/view``: the configured webhooks (a list lands in ``data["result"]``)."""
        return self._call("webhook/view", {}, APIResult)

    def webhook_edit(
        self, request: WebhookEdit | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call("webhook/edit", _model(WebhookEdit, request, fields), APIResult)

    def webhook_remove(
        self, request: WebhookRemove | Mapping[str, Any] | int | None = None, /, **fields: Any
    ) -> APIResult:
        """``webhook/remove``; ``request`` may be the integer webhook id."""
        if isinstance(request, int):
            request = WebhookRemove(id=request)
        return self._call("webhook/remove", _model(WebhookRemove, request, fields), APIResult)

    # ------------------------------------------------------------------ statistics

    def _stats(
        self, name: str, query: StatsQuery | Mapping[str, Any] | None, fields: dict[str, Any]
    ) -> APIResult:
        return self._call(f"stats/{name}", _model(StatsQuery, query, fields), APIResult)

    def stats_email_summary(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """Bounces, cycle, spam and unsubscribes in one report (percentages are strings)."""
        return self._stats("email_summary", query, fields)

    def stats_email_bounces(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._stats("email_bounces", query, fields)

    def stats_email_cycle(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """cycle_start, cycle_end, cycle_used, cycle_remaining, cycle_max."""
        return self._stats("email_cycle", query, fields)

    def stats_email_history(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._stats("email_history", query, fields)

    def stats_email_spam(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._stats("email_spam", query, fields)

    def stats_email_unsubs(
        self, query: StatsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._stats("email_unsubs", query, fields)

    # ------------------------------------------------------------------ activity

    def activity_search(
        self, request: ActivitySearch | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ActivitySearchResult:
        """``activity/search`` (60 calls a minute; at most 1,000 events per page)."""
        return self._call(
            "activity/search", _model(ActivitySearch, request, fields), ActivitySearchResult
        )

    # ------------------------------------------------------------------ suppressions

    def suppression_add(
        self, request: SuppressionAdd | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call("suppression/add", _model(SuppressionAdd, request, fields), APIResult)

    def suppression_view(
        self, request: SuppressionView | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """``suppression/view``: ``data`` has results, total_results and continue_token."""
        return self._call("suppression/view", _model(SuppressionView, request, fields), APIResult)

    def suppression_remove(
        self, request: SuppressionRemove | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        return self._call(
            "suppression/remove", _model(SuppressionRemove, request, fields), APIResult
        )

    # ------------------------------------------------------------------ SMS

    def sms_send(
        self, request: SmsSend | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> SmsSendResult:
        """``sms/send``: up to 100 destinations; over 160 characters costs several units."""
        return self._call("sms/send", _model(SmsSend, request, fields), SmsSendResult)

    def sms_view_received(
        self, query: SmsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """``sms/view-received`` (its request_id sits inside ``data``; handled)."""
        return self._call("sms/view-received", _model(SmsQuery, query, fields), APIResult)

    def sms_view_sent(
        self, query: SmsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """``sms/view-sent`` (its request_id sits inside ``data``; handled)."""
        return self._call("sms/view-sent", _model(SmsQuery, query, fields), APIResult)

    def sms_summary(
        self, query: SmsQuery | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> APIResult:
        """``sms/summary``: total_messages, total_units, total_cost."""
        return self._call("sms/summary", _model(SmsQuery, query, fields), APIResult)


def client_from_settings(settings: Settings) -> SMTP2GOClient:
    """The client a worker process uses, built at the edge from :class:`Settings`."""
    return SMTP2GOClient(
        settings.base_url, settings.require_api_key(), timeout=settings.smtp2go_timeout
    )
