"""Security claims, in one place: where the API key may never appear, what the webhook
receiver refuses, and the plain-http guard on ``SMTP2GO_BASE_URL``.

The same claims against real processes (broker traffic, worker logs, Flower, Redis) are
in ``tests/integration/test_faults_security.py``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from outbox import send_email, send_mime, send_sms, send_template
from outbox.core.errors import SMTP2GOError
from outbox.core.settings import Settings
from outbox.core.smtp2go.client import SMTP2GOClient
from outbox.core.smtp2go.endpoints import EMAIL_SEND
from outbox.core.smtp2go.models import EmailSend
from outbox.core.store import keys
from outbox.core.store.chunks import chunk_id_for
from outbox.worker.logs import SecretsFilter
from outbox.worker.runtime import Runtime, set_runtime
from outbox.worker.startup import check_can_send
from outbox.worker.webhooks import app as webhook_app
from outbox.worker.webhooks.app import create_app
from outbox.worker.webhooks.parse import normalise
from outbox.worker.webhooks.tasks import Outcome, record
from tests.unit.conftest import sent_batch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's test client warns on import
    from starlette.testclient import TestClient

#: A key of the real format, used nowhere else.
KEY = "api-" + "S3cur1tyT3stK3y" + "0" * 17
SECRET = "webhook-secret-for-security-tests"


# -- SMTP2GO_BASE_URL: no plain http to a remote host ---------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.smtp2go.com/v3",
        "HTTP://api.smtp2go.com/v3",  # the scheme is case-insensitive
        " http://api.smtp2go.com/v3",
        "http://10.0.0.8:8025/v3",
        "http://0.0.0.0:8025/v3",
        "http://127.0.0.1.example.com/v3",  # a name, not the loopback address
        "http://localhost.example.com/v3",
    ],
)
def test_base_url_refuses_plain_http_to_a_remote_host(url: str) -> None:
    settings = Settings(SMTP2GO_BASE_URL=url, SMTP2GO_API_KEY=KEY)
    with pytest.raises(ValueError, match="plain http") as caught:
        _ = settings.base_url
    assert "SMTP2GO_ALLOW_INSECURE" in str(caught.value)
    assert KEY not in str(caught.value)
    # Told explicitly, it is allowed.
    allowed = Settings(SMTP2GO_BASE_URL=url, SMTP2GO_ALLOW_INSECURE=True)
    assert allowed.base_url == url.strip().rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8025/v3",
        "http://127.9.9.9:8025/v3/",
        "http://localhost:8025/v3",
        "http://[::1]:8025/v3",
        "https://api.smtp2go.com/v3",
        "https://eu-api.smtp2go.com/v3",
    ],
)
def test_base_url_allows_https_and_loopback(url: str) -> None:
    assert Settings(SMTP2GO_BASE_URL=url).base_url == url.rstrip("/")


def test_region_urls_are_https() -> None:
    for region in ("global", "us", "eu", "au"):
        assert Settings(SMTP2GO_REGION=region).base_url.startswith("https://")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP2GO_BASE_URL", "http://smtp2go.internal/v3")
    with pytest.raises(ValueError, match="plain http"):
        _ = Settings().base_url
    monkeypatch.setenv("SMTP2GO_ALLOW_INSECURE", "1")
    assert Settings().base_url == "http://smtp2go.internal/v3"


def test_a_worker_with_an_insecure_url_refuses_to_start(fake_redis: Any) -> None:
    """``worker.checks`` runs at ``worker_init``: the process exits with the reason
    instead of taking tasks it could only fail (the real process: the integration test)."""
    settings = Settings(SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="http://smtp2go.example/v3")
    set_runtime(Runtime.from_settings(settings, redis_client=fake_redis))
    try:
        with pytest.raises(SystemExit) as caught:
            check_can_send()
    finally:
        set_runtime(None)
    assert "plain http" in str(caught.value)
    assert KEY not in str(caught.value)


def test_the_client_is_never_built_for_an_insecure_url(fake_redis: Any) -> None:
    settings = Settings(SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="http://smtp2go.example/v3")
    rt = Runtime.from_settings(settings, redis_client=fake_redis)
    with pytest.raises(ValueError, match="plain http"):
        _ = rt.client
    assert rt._client is None


# -- the API key: never in a message, a record, a log line, an error or a repr --------------


def test_key_not_in_reprs_or_dumps() -> None:
    settings = Settings(SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="http://127.0.0.1:9/v3")
    client = SMTP2GOClient(settings.base_url, KEY)
    try:
        texts = [
            repr(settings),
            str(settings),
            settings.model_dump_json(),
            json.dumps(settings.model_dump(mode="json")),
            repr(client),
            repr(client._headers),  # httpx masks the header once it is marked sensitive
        ]
    finally:
        client.close()
    for text in texts:
        assert KEY not in text, text


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> SMTP2GOClient:
    return SMTP2GOClient("https://api.example/v3", KEY, transport=httpx.MockTransport(handler))


def _echo_key(status: int) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Smtp2go-Api-Key"] == KEY  # the one place it travels
        assert KEY.encode() not in request.content  # never in the body
        data = {
            "error": f"key {KEY} rejected",
            "error_code": f"E_{KEY}",
            "field_validation_errors": {"fieldname": f"api_key={KEY}", "message": KEY},
        }
        return httpx.Response(status, json={"request_id": KEY, "data": data})

    return handler


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    "handler",
    [
        _echo_key(400),
        _echo_key(401),
        _echo_key(429),
        _echo_key(503),
        lambda request: httpx.Response(502, text=f"<html>bad gateway for {KEY}</html>"),
        _raise(httpx.ConnectError(f"cannot connect with {KEY}")),
        _raise(httpx.ReadTimeout(f"read timed out ({KEY})")),
        _raise(httpx.RemoteProtocolError(f"peer closed; header X-Smtp2go-Api-Key: {KEY}")),
    ],
    ids=["400", "401", "429", "503", "502-html", "connect", "read-timeout", "protocol"],
)
def test_key_not_in_error_text(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    """What ends in a record (``to_dict``), a log line or an operator's terminal."""
    with _client(handler) as client, pytest.raises(SMTP2GOError) as caught:
        client.call(
            EMAIL_SEND,
            {"sender": "a@example.com", "to": ["b@example.com"], "subject": "s", "text_body": "t"},
        )
    err = caught.value
    own = [str(err), repr(err), json.dumps(err.to_dict()), *map(str, err.args)]
    for text in own:
        assert KEY not in text, text
    # Through a pickle round trip (Celery's result/event paths) the text stays clean.
    assert KEY not in str(pickle.loads(pickle.dumps(err)))
    # A logged traceback shows the chained httpx error too: the log filter cleans it.
    stream = io.StringIO()
    handler_ = logging.StreamHandler(stream)
    handler_.addFilter(SecretsFilter())
    log = logging.getLogger("tests.security.traceback")
    log.addHandler(handler_)
    log.propagate = False
    try:
        log.error("send failed", exc_info=err)
    finally:
        log.removeHandler(handler_)
    assert "send failed" in stream.getvalue()
    assert "Traceback" in stream.getvalue()
    assert KEY not in stream.getvalue()


@pytest.fixture
def keyed_runtime(fake_redis: Any) -> Iterator[Runtime]:
    """A producer runtime that *has* the key (a worker host sending too)."""
    settings = Settings(
        SMTP2GO_API_KEY=KEY, SMTP2GO_BASE_URL="http://127.0.0.1:9/v3", OUTBOX_RATE_LIMIT="1000/s"
    )
    rt = Runtime.from_settings(settings, redis_client=fake_redis)
    set_runtime(rt)
    yield rt
    set_runtime(None)


def _raw_messages(app: Any) -> list[bytes]:
    """Every message on the in-memory broker, headers and encoded body, as bytes."""
    out: list[bytes] = []
    with app.connection_for_read() as conn:
        for queue in ("email", "sms", "bulk"):
            simple = conn.SimpleQueue(queue)
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                out.append(json.dumps(message.headers, default=str).encode() + message.body)
                message.ack()
            simple.close()
    return out


def test_key_not_in_broker_messages_or_records(keyed_runtime: Runtime, memory_broker: Any) -> None:
    from outbox.worker.celery_app import app

    attachment = {"filename": "a.txt", "fileblob": base64.b64encode(b"hello").decode()}
    send_email(
        "Shop <shop@example.com>",
        [f"r{i}@example.com" for i in range(250)],
        "Receipt",
        html_body="<p>x</p>",
        custom_headers={"X-Order": "1"},
        attachments=[attachment],
        idempotency_key="order-1",
    )
    send_template("shop@example.com", ["ann@example.com"], "welcome-1", {"name": "Ann"})
    send_sms(["+61400000001"], "code 1234")
    send_mime("From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nbody")
    messages = _raw_messages(app)
    assert len(messages) >= 4
    for raw in messages:
        assert b"shop@example.com" in raw or b"+61400000001" in raw or b"mime" in raw
        assert KEY.encode() not in raw
    redis = keyed_runtime.redis
    for key in redis.scan_iter():
        assert KEY.encode() not in key
        kind = redis.type(key)
        if kind == b"string":
            values = [redis.get(key)]
        elif kind == b"hash":
            values = list(redis.hvals(key))
        elif kind == b"list":
            values = redis.lrange(key, 0, -1)
        elif kind == b"zset":
            values = redis.zrange(key, 0, -1)
        else:
            values = list(redis.smembers(key))
        assert not any(KEY.encode() in v for v in values), key


# -- the webhook receiver ---------------------------------------------------------------------


@pytest.fixture
def published() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def receiver(published: list[dict[str, Any]]) -> Iterator[TestClient]:
    app = create_app(secret=SECRET, enqueue=published.append, max_body=4096)
    with TestClient(app) as client:
        yield client


EVENT = {"event": "delivered", "email_id": "E1", "rcpt": "ann@example.org", "time": "t1"}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {SECRET[:-1]}",  # a prefix
        f"Bearer {SECRET}x",  # an extension
        f"Bearer {SECRET.upper()}",
        f"Token {SECRET}",
        f"Bearer{SECRET}",
        _basic(SECRET, "wrong"),  # the secret as the user name is not enough
        _basic("smtp2go", ""),
        "Basic " + SECRET,  # not base64 of user:password
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(SECRET.encode()).decode(),  # no colon
    ],
)
def test_receiver_refuses_unauthenticated_posts(
    receiver: TestClient, published: list[dict[str, Any]], authorization: str | None
) -> None:
    """Every wrong credential is refused; the body is never looked at.

    Fault: Unauthenticated or oversized posts to the webhook receiver
    Outcome: 401 (the secret compared in constant time, as a bearer token or a basic-auth
        password) or 413 before the body is read; nothing published
    """
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = receiver.post("/webhooks/smtp2go", json=EVENT, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert SECRET not in response.text
    assert published == []


@pytest.mark.parametrize(
    "authorization", [f"Bearer {SECRET}", f"bearer  {SECRET}", _basic("smtp2go", SECRET)]
)
def test_receiver_accepts_the_secret(
    receiver: TestClient, published: list[dict[str, Any]], authorization: str
) -> None:
    response = receiver.post(
        "/webhooks/smtp2go", json=EVENT, headers={"Authorization": authorization}
    )
    assert response.status_code == 200
    assert [e["email_id"] for e in published] == ["E1"]


def test_receiver_refuses_oversized_bodies_before_reading_them(
    receiver: TestClient, published: list[dict[str, Any]]
) -> None:
    auth = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    big = json.dumps({**EVENT, "subject": "x" * 5000}).encode()
    assert receiver.post("/webhooks/smtp2go", content=big, headers=auth).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"event": "delivered", "pad": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    assert receiver.post("/webhooks/smtp2go", content=chunks(), headers=auth).status_code == 413
    # Unauthenticated and oversized: 401 first, nothing about the body is read.
    assert receiver.post("/webhooks/smtp2go", content=big).status_code == 401
    assert published == []


def test_receiver_compares_secrets_in_constant_time(
    receiver: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = webhook_app.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook_app.hmac, "compare_digest", spy)
    for authorization in (
        f"Bearer {SECRET}",
        "Bearer nope",
        _basic("u", SECRET),
        _basic("u", "no"),
    ):
        receiver.post("/webhooks/smtp2go", json=EVENT, headers={"Authorization": authorization})
    assert len(calls) == 4
    assert all(b == SECRET.encode() for _, b in calls)


def test_receiver_will_not_start_without_a_secret() -> None:
    with pytest.raises(ValueError, match="OUTBOX_WEBHOOK_SECRET"):
        create_app(secret=None)
    with pytest.raises(ValueError, match="OUTBOX_WEBHOOK_SECRET"):
        create_app(secret="")


def _sent_chunk(rt: Runtime, email_id: str) -> str:
    batch_id = sent_batch(rt, [email_id], ["ann@example.org"])
    return chunk_id_for(batch_id, 0)


def test_events_reach_a_record_only_through_its_email_id(runtime: Runtime) -> None:
    """Nothing in an event but a matching ``email_id`` (an SMS event: ``message_id``)
    picks the record it lands on.

    Fault: A webhook event naming another message's chunk, batch or Redis key
    Outcome: it lands only on the record whose `email_id` (SMS: `message_id`) it carries
        (never rewriting the record itself); anything else goes to the bounded unmatched
        list
    """
    mine = _sent_chunk(runtime, "EMAIL-A")
    theirs = _sent_chunk(runtime, "EMAIL-B")
    forged = {
        "chunk": theirs,
        "chunk_id": theirs,
        "id": theirs,
        "batch": "b" * 32,
        "X-Outbox-Id": theirs,
        "custom_headers": {"X-Outbox-Id": theirs},
        "message_id": theirs,
    }
    attempts = [
        # Their chunk named every other way, on my email id: lands on mine.
        ({"email_id": "EMAIL-A", **forged}, Outcome.RECORDED),
        # Their chunk id, or a key of theirs, as the email id: no such email id.
        ({"email_id": theirs}, Outcome.UNMATCHED),
        ({"email_id": keys.chunk(theirs)}, Outcome.UNMATCHED),
        ({"email_id": "EMAIL-B:events"}, Outcome.UNMATCHED),
        ({"email_id": "EMAIL-*"}, Outcome.UNMATCHED),
        ({"email_id": "email-b"}, Outcome.UNMATCHED),  # ids are compared exactly
        # No email id at all (an SMS-shaped event naming their chunk).
        ({"message_id": theirs, "destination": "+61400000001"}, Outcome.UNMATCHED),
        # An SMS event whose message id is an email id: the two indexes are apart.
        ({"event": "sms_delivered", "message_id": "EMAIL-A"}, Outcome.UNMATCHED),
    ]
    for i, (fields, expected) in enumerate(attempts):
        body = {"event": "open", "rcpt": "ann@example.org", "time": f"t{i}", **fields}
        event = normalise(body, received_at=1_700_000_000.0 + i)
        assert record(runtime, event) is expected, fields
    assert runtime.redis.hlen(keys.chunk_events(mine)) == 1
    assert runtime.redis.hlen(keys.chunk_events(theirs)) == 0
    assert runtime.redis.llen(keys.webhook_unmatched()) == len(attempts) - 1


def test_an_event_cannot_create_or_rewrite_a_record(runtime: Runtime) -> None:
    mine = _sent_chunk(runtime, "EMAIL-C")
    before = runtime.redis.hgetall(keys.chunk(mine))
    body = {
        "event": "delivered",
        "email_id": "EMAIL-C",
        "state": "dead",
        "succeeded": "0",
        "recipients": ["mallory@example.org"],
        "time": "t1",
    }
    assert record(runtime, normalise(body, received_at=1.0)) is Outcome.RECORDED
    assert runtime.redis.hgetall(keys.chunk(mine)) == before  # events go to their own hash only
    assert not runtime.redis.exists(keys.chunk(chunk_id_for("d" * 32, 0)))


def test_webhook_raw_fields_drop_credentials() -> None:
    body = {
        "event": "open",
        "email_id": "E1",
        "auth_header_value": SECRET,
        "Authorization": f"Bearer {SECRET}",
        "api_key": KEY,
        "nested": {"password": SECRET},
    }
    event = normalise(body, received_at=1.0)
    assert SECRET not in json.dumps(event)
    assert KEY not in json.dumps(event)


def test_header_injection_never_reaches_the_wire() -> None:
    """CR/LF in anything that becomes a header line is refused by the one model."""
    base: dict[str, Any] = {"sender": "a@example.com", "to": ["b@example.com"], "text_body": "t"}
    for bad in (
        {"subject": "hi\r\nBcc: victim@example.org"},
        {"sender": "Ann\r\nBcc: victim@example.org <a@example.com>"},
        {"subject": "x", "custom_headers": [{"header": "X-A", "value": "v\nBcc: v@example.org"}]},
        {"subject": "x", "custom_headers": [{"header": "X-A\r\nBcc", "value": "v"}]},
        {"subject": "x", "reply_to": "r@example.com\r\nBcc: v@example.org"},
        {"subject": "x", "attachments": [{"filename": "a\r\n.txt", "fileblob": "aGk="}]},
    ):
        with pytest.raises(ValueError, match=r"CR, LF|header name|address"):
            EmailSend.model_validate({**base, **bad})
