"""The client against ``httpx.MockTransport``: paths, the key, and every error mapping."""

from __future__ import annotations

import email.utils
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from outbox.core.errors import (
    APIError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    RequestFailedError,
    RequestTimeout,
    ServerError,
    SMTP2GOError,
    TransportError,
    UnauthorizedError,
    UnexpectedStatusError,
)
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.smtp2go.endpoints import (
    EMAIL_SEND,
    SMS_VIEW_SENT,
)
from outbox.core.smtp2go.models import (
    ActivitySearchResult,
    APIResult,
    BatchResult,
    EmailSend,
    SendResult,
    SmsSendResult,
)
from outbox.core.smtp2go.responses import error_from_response, parse_retry_after

KEY = "api-" + "K" * 16 + "0123456789abcdef"
BASE = "http://127.0.0.1:9/v3"
Handler = Callable[[httpx.Request], httpx.Response]

EMAIL = {
    "sender": "shop@example.com",
    "to": ["alice@example.com"],
    "subject": "Hi",
    "text_body": "Hello",
}


def ok(data: Any = None, request_id: str = "req-1") -> httpx.Response:
    return httpx.Response(200, json={"request_id": request_id, "data": data or {}})


def api_error(
    status: int, data: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json={"request_id": "req-e", "data": data}, headers=headers)


class Recorder:
    """A MockTransport handler that records requests and answers from a queue."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else ok()
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def last_body(self) -> dict[str, Any]:
        return dict(json.loads(self.requests[-1].content))

    @property
    def last_path(self) -> str:
        return self.requests[-1].url.path


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[SMTP2GOClient, Recorder]]]:
    clients: list[SMTP2GOClient] = []

    def build(
        *answers: httpx.Response | Exception, key: str = KEY
    ) -> tuple[SMTP2GOClient, Recorder]:
        recorder = Recorder(*answers)
        client = SMTP2GOClient(BASE, key, transport=httpx.MockTransport(recorder))
        clients.append(client)
        return client, recorder

    yield build
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- key handling


def test_key_only_in_header(make_client: Any) -> None:
    client, rec = make_client(ok({"succeeded": 1, "failed": 0, "email_id": "e1"}))
    client.call(EMAIL_SEND, EmailSend.model_validate(EMAIL))
    request = rec.requests[0]
    assert request.method == "POST"
    assert request.headers["X-Smtp2go-Api-Key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert KEY.encode() not in request.content
    assert "api_key" not in rec.last_body


def test_key_never_in_reprs(make_client: Any) -> None:
    client, rec = make_client()
    client.request("stats/email_cycle", {})
    assert KEY not in repr(client)
    assert KEY not in repr(rec.requests[0].headers)
    assert KEY not in repr(client._headers)


def test_key_never_in_errors_even_if_echoed(make_client: Any) -> None:
    odd_key = "sandbox-key-not-api-shaped"
    client, _ = make_client(
        api_error(401, {"error": f"bad key {odd_key} / {KEY}", "error_code": "E_AUTH"}),
        key=odd_key,
    )
    with pytest.raises(UnauthorizedError) as info:
        client.request("email/send", {})
    text = str(info.value) + repr(info.value) + json.dumps(info.value.to_dict())
    assert odd_key not in text
    assert KEY not in text
    assert "api-***" in text


def test_key_never_logged(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = make_client(ok(), api_error(500, {"error": "boom"}))
    with caplog.at_level(logging.DEBUG):
        client.request("email/send", {})
        with pytest.raises(ServerError):
            client.request("email/send", {})
    assert "email/send" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize("key", ["", "   ", "api-x\r\nX-Evil: 1"])
def test_bad_keys_refused(key: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        SMTP2GOClient(BASE, key)


# --------------------------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("status", "data", "cls", "retryable"),
    [
        (
            400,
            {"error": "bad", "error_code": "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"},
            BadRequestError,
            False,
        ),
        (
            400,
            {"error": "denied", "error_code": "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED"},
            ForbiddenError,
            False,
        ),
        (401, {"error": "invalid key"}, UnauthorizedError, False),
        (402, {"error": "over quota"}, RequestFailedError, False),
        (403, {"error": "forbidden"}, ForbiddenError, False),
        (404, {"error": "no such template"}, NotFoundError, False),
        (429, {"error": "slow down"}, RateLimitedError, True),
        (500, {"error": "oops"}, ServerError, True),
        (502, {"error": "bad gateway"}, ServerError, True),
        (503, {"error": "unavailable"}, ServerError, True),
        (418, {"error": "teapot"}, UnexpectedStatusError, False),
        (302, {"error": "moved"}, UnexpectedStatusError, False),
    ],
)
def test_status_mapping(
    make_client: Any, status: int, data: dict[str, Any], cls: type[APIError], retryable: bool
) -> None:
    client, _ = make_client(api_error(status, data))
    with pytest.raises(cls) as info:
        client.call(EMAIL_SEND, EMAIL)
    err = info.value
    assert type(err) is cls
    assert isinstance(err, APIError)
    assert isinstance(err, SMTP2GOError)
    assert err.retryable is retryable
    assert err.status_code == status
    assert err.request_id == "req-e"
    assert err.message == data["error"]
    assert err.error_code == data.get("error_code")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"fieldname": "to", "message": "to is required"}, {"to": "to is required"}),
        (
            {"to": "invalid address", "subject": "too long"},
            {"to": "invalid address", "subject": "too long"},
        ),
        (
            [{"fieldname": "to", "message": "a"}, {"fieldname": "cc", "message": "b"}],
            {"to": "a", "cc": "b"},
        ),
        (None, {}),
    ],
)
def test_field_errors_both_shapes(make_client: Any, raw: Any, expected: dict[str, str]) -> None:
    data: dict[str, Any] = {
        "error": "invalid",
        "error_code": "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD",
    }
    if raw is not None:
        data["field_validation_errors"] = raw
    client, _ = make_client(api_error(400, data))
    with pytest.raises(BadRequestError) as info:
        client.call(EMAIL_SEND, EMAIL)
    assert info.value.field_errors == expected
    for name in expected:
        assert name in str(info.value)


NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": email.utils.formatdate(NOW + 120, usegmt=True)}, 120.0),
        ({"Retry-After": email.utils.formatdate(NOW - 120, usegmt=True)}, 0.0),
        ({"X-RateLimit-Reset": "30"}, 30.0),
        ({"X-RateLimit-Reset": str(int(NOW + 45))}, 45.0),
        ({"Retry-After": "3", "X-RateLimit-Reset": "30"}, 3.0),
        ({"Retry-After": "soon", "X-RateLimit-Reset": "30"}, 30.0),
        ({"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    response = httpx.Response(429, json={"data": {"error": "slow"}}, headers=headers)
    err = error_from_response(response, now=NOW)
    assert isinstance(err, RateLimitedError)
    assert err.retry_after == expected
    assert parse_retry_after(response.headers, now=NOW) == expected


def test_retry_after_through_the_client(make_client: Any) -> None:
    client, _ = make_client(api_error(429, {"error": "slow"}, {"Retry-After": "12"}))
    with pytest.raises(RateLimitedError) as info:
        client.call(EMAIL_SEND, EMAIL)
    assert info.value.retry_after == 12.0
    assert info.value.to_dict()["retry_after"] == 12.0


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, "<html><body>Bad Gateway</body></html>", ServerError),
        (400, "not json at all", BadRequestError),
        (500, "", ServerError),
        (429, "", RateLimitedError),
    ],
)
def test_non_json_error_bodies(
    make_client: Any, status: int, body: str, cls: type[APIError]
) -> None:
    client, _ = make_client(httpx.Response(status, text=body))
    with pytest.raises(cls) as info:
        client.request("email/send", {})
    assert info.value.status_code == status
    assert info.value.request_id is None
    assert info.value.message


@pytest.mark.parametrize("body", ["<html>ok</html>", "[1, 2]", ""])
def test_success_without_json_object(make_client: Any, body: str) -> None:
    client, _ = make_client(httpx.Response(200, text=body))
    with pytest.raises(UnexpectedStatusError) as info:
        client.request("email/send", {})
    assert info.value.status_code == 200


def test_success_with_unparseable_fields(make_client: Any) -> None:
    client, _ = make_client(ok({"succeeded": "many"}))
    with pytest.raises(UnexpectedStatusError):
        client.call(EMAIL_SEND, EMAIL)


# --------------------------------------------------------------------------- transport errors


@pytest.mark.parametrize(
    ("exc", "cls", "ambiguous"),
    [
        (httpx.ConnectError("refused"), TransportError, False),
        (httpx.ConnectTimeout("connect timed out"), RequestTimeout, False),
        (httpx.PoolTimeout("no free connection"), RequestTimeout, False),
        (httpx.ReadTimeout("read timed out"), RequestTimeout, True),
        (httpx.WriteTimeout("write timed out"), RequestTimeout, True),
        (httpx.RemoteProtocolError("server disconnected"), TransportError, True),
        (httpx.ReadError("connection reset"), TransportError, True),
        (httpx.WriteError("broken pipe"), TransportError, True),
        (httpx.LocalProtocolError("bad request line"), TransportError, False),
    ],
)
def test_transport_errors(
    make_client: Any, exc: httpx.HTTPError, cls: type[TransportError], ambiguous: bool
) -> None:
    client, _ = make_client(exc)
    with pytest.raises(cls) as info:
        client.call(EMAIL_SEND, EMAIL)
    err = info.value
    assert type(err) is cls
    assert err.ambiguous is ambiguous
    assert err.retryable is True
    assert err.status_code is None
    assert err.__cause__ is exc
    assert err.to_dict()["ambiguous"] is ambiguous
    assert type(exc).__name__ in str(err)


def test_real_connection_refused_is_not_ambiguous() -> None:
    with (
        socket_free_port() as port,
        SMTP2GOClient(f"http://127.0.0.1:{port}/v3", KEY) as client,
        pytest.raises(TransportError) as info,
    ):
        client.request("email/send", {})
    assert info.value.ambiguous is False


class socket_free_port:
    """A loopback port nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


# --------------------------------------------------------------------------- results


def test_a_refused_email_is_returned_not_raised(make_client: Any) -> None:
    """The API answers 200 even when it refused the email: the answer says so."""
    client, _ = make_client(
        ok(
            {
                "succeeded": 0,
                "failed": 1,
                "failures": ["domain verify fail"],
                "email_id": "",
            }
        )
    )
    result = client.call(EMAIL_SEND, EMAIL)
    assert isinstance(result, SendResult)
    assert result.refused
    assert result.failures == ["domain verify fail"]
    assert result.request_id == "req-1"


def test_request_returns_whole_answer(make_client: Any) -> None:
    client, rec = make_client(ok({"cycle_used": 3}))
    answer = client.request("/stats/email_cycle/", {"username": "u"})
    assert answer == {"request_id": "req-1", "data": {"cycle_used": 3}}
    assert rec.last_path == "/v3/stats/email_cycle"
    assert rec.last_body == {"username": "u"}


def test_invalid_keywords_fail_before_any_request(make_client: Any) -> None:
    client, rec = make_client()
    with pytest.raises(ValueError, match="validation error"):
        client.call(EMAIL_SEND, {**EMAIL, "to": []})
    assert rec.requests == []


SMS = {"destination": ["+61400000000"], "content": "code 1234"}
TEMPLATE = {
    "id": "welcome",
    "template_name": "Welcome",
    "subject": "Hi",
    "html_body": "<p>Hi</p>",
    "text_body": "Hi",
}
MIME = "From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody"


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "path", "result_type", "body"),  # method: the old name
    [
        ("send_email", (), EMAIL, "email/send", SendResult, EMAIL),
        ("send_mime", (), {"mime_email": MIME}, "email/mime", SendResult, None),
        ("send_batch", ({"emails": [EMAIL]},), {}, "email/batch", BatchResult, {"emails": [EMAIL]}),
        ("template_add", (TEMPLATE,), {}, "template/add", APIResult, TEMPLATE),
        (
            "template_edit",
            (),
            {"id": "welcome", "subject": "New"},
            "template/edit",
            APIResult,
            None,
        ),
        ("template_delete", ("welcome",), {}, "template/delete", APIResult, {"id": "welcome"}),
        ("template_view", ("welcome",), {}, "template/view", APIResult, {"id": "welcome"}),
        ("template_search", (), {"search_terms": ["wel"]}, "template/search", APIResult, None),
        (
            "webhook_add",
            (),
            {"url": "https://hooks.example.com/x", "events": ["delivered"]},
            "webhook/add",
            APIResult,
            None,
        ),
        ("webhook_view", (), {}, "webhook/view", APIResult, {}),
        ("webhook_edit", (), {"id": 3, "events": ["bounce"]}, "webhook/edit", APIResult, None),
        ("webhook_remove", (3,), {}, "webhook/remove", APIResult, {"id": 3}),
        ("stats_email_summary", (), {}, "stats/email_summary", APIResult, {}),
        ("stats_email_bounces", (), {"username": "u"}, "stats/email_bounces", APIResult, None),
        ("stats_email_cycle", (), {}, "stats/email_cycle", APIResult, {}),
        ("stats_email_history", (), {"group_by": "domain"}, "stats/email_history", APIResult, None),
        ("stats_email_spam", (), {}, "stats/email_spam", APIResult, {}),
        ("stats_email_unsubs", (), {}, "stats/email_unsubs", APIResult, {}),
        (
            "activity_search",
            (),
            {"search_subject": "Hi"},
            "activity/search",
            ActivitySearchResult,
            None,
        ),
        (
            "suppression_add",
            (),
            {"email_address": "x@example.com"},
            "suppression/add",
            APIResult,
            None,
        ),
        ("suppression_view", (), {}, "suppression/view", APIResult, {}),
        (
            "suppression_remove",
            (),
            {"email_address": "x@example.com", "reasons": ["manual"]},
            "suppression/remove",
            APIResult,
            None,
        ),
        ("sms_send", (), SMS, "sms/send", SmsSendResult, SMS),
        ("sms_view_received", (), {}, "sms/view-received", APIResult, {}),
        ("sms_view_sent", (), {}, "sms/view-sent", APIResult, {}),
        ("sms_summary", (), {}, "sms/summary", APIResult, {}),
    ],
)
def test_endpoint_paths(
    make_client: Any,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    path: str,
    result_type: type[Any],
    body: dict[str, Any] | None,
) -> None:
    from outbox.core.smtp2go.endpoints import ENDPOINTS

    client, rec = make_client()
    given = args[0] if args and isinstance(args[0], dict) else {"id": args[0]} if args else kwargs
    result = client.call(ENDPOINTS[path], given)
    assert rec.last_path == f"/v3/{path}"
    assert isinstance(result, result_type)
    assert result.request_id == "req-1"
    sent = rec.last_body
    assert KEY not in json.dumps(sent)
    assert None not in sent.values()
    if body is not None:
        assert sent == body
    else:
        for name, value in kwargs.items():
            if name != "mime_email":
                assert sent[name] == value


def test_sms_views_read_request_id_inside_data(make_client: Any) -> None:
    client, _ = make_client(
        httpx.Response(200, json={"data": {"request_id": "in", "messages": []}})
    )
    assert client.call(SMS_VIEW_SENT).request_id == "in"


def test_with_respx_too() -> None:
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        route = router.post("/email/send").mock(
            return_value=httpx.Response(200, json={"request_id": "r", "data": {"succeeded": 1}})
        )
        with SMTP2GOClient(BASE, KEY) as client:
            assert client.call(EMAIL_SEND, EMAIL).succeeded == 1
        assert route.calls.last.request.headers["x-smtp2go-api-key"] == KEY


# --------------------------------------------------------------------------- plumbing


def test_errors_pickle_and_serialise() -> None:
    errs: list[SMTP2GOError] = [
        BadRequestError("bad", status_code=400, request_id="r", field_errors={"to": "x"}),
        RateLimitedError("slow", retry_after=5.0, status_code=429),
        RequestTimeout("timed out", ambiguous=True),
    ]
    for err in errs:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert copy.to_dict() == err.to_dict()
        assert str(copy) == str(err)
        json.dumps(err.to_dict())
    assert set(errs[0].to_dict()) >= {
        "message",
        "type",
        "status_code",
        "request_id",
        "error_code",
        "field_errors",
        "retryable",
    }


def test_timeouts() -> None:
    """Every request carries its timeouts to the transport (a float is the read/write
    timeout; connecting and the pool stay short)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"request_id": "r", "data": {}})

    mock = httpx.MockTransport(answer)
    with SMTP2GOClient(BASE, KEY, timeout=12.0, transport=mock) as client:
        client.request("stats/email_cycle")
    with SMTP2GOClient(BASE, KEY, transport=mock) as client:
        client.request("stats/email_cycle")
    assert seen[0].extensions["timeout"] == {
        "connect": 5.0,
        "read": 12.0,
        "write": 12.0,
        "pool": 5.0,
    }
    assert seen[1].extensions["timeout"]["read"] == 30.0


def test_every_endpoint_in_the_table_has_its_models() -> None:
    from outbox.core.smtp2go.endpoints import ENDPOINTS

    assert len(ENDPOINTS) == 26
    for path, endpoint in ENDPOINTS.items():
        assert path == endpoint.path
        assert endpoint.request is not None or path == "webhook/view"


def test_a_body_over_the_services_limit_is_never_sent(make_client: Any) -> None:
    """A call the service would refuse for its size (1 MB outside /email/*, changelog
    2026-06-11) fails here, as a 4xx that no retry can help, and costs no request."""
    client, recorder = make_client()
    with pytest.raises(BadRequestError, match=r"over the 1\.0 MB SMTP2GO takes for /template/add"):
        client.request("template/add", {"html_body": "x" * 1_000_000})
    assert recorder.requests == []
    client.request("email/send", {"text_body": "x" * 1_000_000})  # /email/* takes 50 MB
    assert len(recorder.requests) == 1
