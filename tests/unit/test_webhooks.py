"""The webhook receiver (Starlette TestClient) and the ``outbox.record_event`` task (fakeredis)."""

from __future__ import annotations

import base64
import json
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from outbox.core.queues import TaskName
from outbox.core.store import keys
from outbox.core.store.chunks import chunk_id_for
from outbox.core.store.parked import Call
from outbox.core.views import load_record
from outbox.worker.runtime import Runtime
from outbox.worker.webhooks.app import authorised, create_app
from outbox.worker.webhooks.parse import EVENT_NAMES, digest, normalise, parse_form
from outbox.worker.webhooks.tasks import UNMATCHED_DELAYS, Outcome, record, record_event
from tests.unit.conftest import sent_batch
from tests.unit.worker_run import run_task

with warnings.catch_warnings():
    # Starlette asks for ``httpx2`` but still runs on httpx; only the import warns.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "s3cret-for-tests"
PATH = "/webhooks/smtp2go"
BEARER = {"Authorization": f"Bearer {SECRET}"}


def payload(event: str = "delivered", **fields: Any) -> dict[str, Any]:
    """An email event as SMTP2GO (and the sandbox) posts it."""
    base: dict[str, Any] = {
        "event": event,
        "time": "2024-01-01T12:00:05Z",
        "sendtime": "2024-01-01T12:00:00Z",
        "sender": "shop@example.com",
        "from_address": "shop@example.com",
        "rcpt": "ann@example.org",
        "email_id": "1rAbCd-0001",
        "subject": "Receipt",
        "message-id": "<1rAbCd-0001@smtp2go>",
    }
    base.update(fields)
    return base


def form(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": urlencode(body, doseq=True),
        "headers": {**BEARER, "Content-Type": "application/x-www-form-urlencoded"},
    }


@pytest.fixture
def broker(memory_broker: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The in-memory broker, for real: Celery prefers ``CELERY_BROKER_URL`` (which
    tests/conftest.py sets to the integration Redis) over ``app.conf.broker_url``."""
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    from outbox.worker.celery_app import app

    assert app.connection_for_write().transport_cls == "memory"
    memory_broker.drain()
    return memory_broker


@pytest.fixture
def received() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(received: list[dict[str, Any]]) -> Iterator[TestClient]:
    with TestClient(create_app(secret=SECRET, enqueue=received.append)) as c:
        yield c


# -- the receiver -------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_json_body_with_bearer(client: TestClient, received: list[dict[str, Any]]) -> None:
    response = client.post(PATH, json=payload(), headers=BEARER)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "received": 1}
    [event] = received
    assert {k: event[k] for k in ("event", "channel", "email_id", "rcpt", "bounce")} == {
        "event": "delivered",
        "channel": "email",
        "email_id": "1rAbCd-0001",
        "rcpt": "ann@example.org",
        "bounce": None,
    }
    assert event["sender"] == "shop@example.com"
    assert event["subject"] == "Receipt"
    assert event["time"] == "2024-01-01T12:00:05Z"
    assert event["sendtime"] == "2024-01-01T12:00:00Z"
    assert event["message_id"] is None  # the RFC Message-ID stays in raw
    assert event["raw"]["message-id"] == "<1rAbCd-0001@smtp2go>"
    assert isinstance(event["received_at"], float)
    json.dumps(event)  # it crosses the broker as JSON


def test_form_body_processed_with_recipients(
    client: TestClient, received: list[dict[str, Any]]
) -> None:
    body = payload("processed", recipients=["ann@example.org", "bob@example.org"])
    response = client.post(PATH, **form(body))
    assert response.status_code == 200, response.text
    [event] = received
    assert event["event"] == "processed"
    assert event["recipients"] == ["ann@example.org", "bob@example.org"]
    assert event["email_id"] == "1rAbCd-0001"


def test_form_single_recipient_is_still_a_list(
    client: TestClient, received: list[dict[str, Any]]
) -> None:
    client.post(PATH, **form(payload("processed", recipients=["ann@example.org"])))
    assert received[0]["recipients"] == ["ann@example.org"]


def test_form_and_json_normalise_alike() -> None:
    body = payload("bounce", bounce="hard", recipients=["ann@example.org"])
    from_json = normalise(body, received_at=1.0)
    [parsed] = parse_form(urlencode(body, doseq=True).encode())
    from_form = normalise(parsed, received_at=2.0)
    assert {k: v for k, v in from_json.items() if k != "received_at"} == {
        k: v for k, v in from_form.items() if k != "received_at"
    }
    assert digest(from_json) == digest(from_form)


def test_multipart_form_body(client: TestClient, received: list[dict[str, Any]]) -> None:
    response = client.post(
        PATH, data=payload("open"), files={"upload": ("a.txt", b"hi")}, headers=BEARER
    )
    # A file part is not an SMTP2GO field: refused; plain fields are fine.
    assert response.status_code == 400
    boundary = "xyzzy"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in payload("open").items()
    )
    response = client.post(
        PATH,
        content=(parts + f"--{boundary}--\r\n").encode(),
        headers={**BEARER, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, response.text
    assert [e["event"] for e in received] == ["open"]


@pytest.mark.parametrize("user", ["smtp2go", "", "any:thing"])
def test_basic_auth_password_is_the_secret(
    client: TestClient, received: list[dict[str, Any]], user: str
) -> None:
    token = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    response = client.post(PATH, json=payload(), headers={"Authorization": f"Basic {token}"})
    if ":" in user:
        # The user name ends at the first colon, so the password is "thing:<secret>".
        assert response.status_code == 401
        assert received == []
    else:
        assert response.status_code == 200
        assert len(received) == 1


def test_basic_auth_with_non_ascii_secret(received: list[dict[str, Any]]) -> None:
    secret = "pässwörd-ünïcode"
    with TestClient(create_app(secret=secret, enqueue=received.append)) as c:
        ok = c.post(PATH, json=payload(), auth=("smtp2go", secret))
        bad = c.post(PATH, json=payload(), auth=("smtp2go", "passwort-unicode"))
    assert (ok.status_code, bad.status_code) == (200, 401)
    assert len(received) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Token {SECRET}"},
        {"Authorization": SECRET},
        {"Authorization": "Basic " + base64.b64encode(f"{SECRET}:nope".encode()).decode()},
        {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},
        {"Authorization": "Basic not-base64!"},
        {"X-Secret": SECRET},
    ],
    ids=[
        "none",
        "wrong",
        "longer",
        "prefix",
        "empty",
        "other-scheme",
        "no-scheme",
        "secret-as-user",
        "basic-no-colon",
        "basic-garbage",
        "other-header",
    ],
)
def test_wrong_or_missing_credentials_401(
    client: TestClient, received: list[dict[str, Any]], headers: dict[str, str]
) -> None:
    response = client.post(PATH, json=payload(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert received == []


def test_authorised_helper() -> None:
    key = SECRET.encode()
    assert authorised(f"bearer {SECRET}".encode(), key)  # scheme is case-insensitive
    assert authorised(f"  Bearer   {SECRET}  ".encode(), key)
    assert not authorised(None, key)
    assert not authorised(b"Bearer", key)
    assert not authorised(b"Basic " + base64.b64encode(b":" + key + b"!"), key)


def test_secret_is_required_unless_insecure(
    received: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="secret"):
        create_app(secret=None)
    with pytest.raises(ValueError, match="secret"):
        create_app(secret="")
    with caplog.at_level(logging.WARNING, logger="outbox.worker.webhooks.app"):
        app = create_app(secret=None, insecure=True, enqueue=received.append)
    assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records)
    with TestClient(app) as c:
        assert c.post(PATH, json=payload()).status_code == 200
    assert len(received) == 1


def test_insecure_with_a_secret_still_checks_it(received: list[dict[str, Any]]) -> None:
    with TestClient(create_app(secret=SECRET, insecure=True, enqueue=received.append)) as c:
        assert c.post(PATH, json=payload()).status_code == 401


def test_oversized_by_content_length_413(received: list[dict[str, Any]]) -> None:
    with TestClient(create_app(secret=SECRET, enqueue=received.append, max_body=500)) as c:
        big = payload(subject="x" * 600)
        response = c.post(PATH, json=big, headers=BEARER)
        small = c.post(PATH, json=payload(), headers=BEARER)
    assert response.status_code == 413
    assert small.status_code == 200
    assert len(received) == 1


def test_oversized_stream_without_content_length_413(received: list[dict[str, Any]]) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 100

    with TestClient(create_app(secret=SECRET, enqueue=received.append, max_body=500)) as c:
        response = c.post(
            PATH, content=chunks(), headers={**BEARER, "Content-Type": "application/json"}
        )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert received == []


def test_bad_content_length_400(client: TestClient, received: list[dict[str, Any]]) -> None:
    response = client.post(PATH, content=b"{}", headers={**BEARER, "Content-Length": "lots"})
    assert response.status_code == 400
    assert received == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'"just a string"', "application/json"),
        (b"42", "application/json"),
        (b'{"email_id": "x", "rcpt": "a@b.c"}', "application/json"),
        (b'{"event": ""}', "application/json"),
        (b'{"event": 7}', "application/json"),
        (b'{"event": {"nested": true}}', "application/json"),
        (b'[{"event": "delivered"}, "not an object"]', "application/json"),
        (b'[{"event": "delivered"}, {"rcpt": "no event"}]', "application/json"),
        (json.dumps({"event": "e" * 65}).encode(), "application/json"),
        (b"hello world", "text/plain"),
        (b"email_id=x&rcpt=a%40b.c", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),
        (b"", ""),
    ],
)
def test_garbage_400_and_nothing_enqueued(
    client: TestClient, received: list[dict[str, Any]], content: bytes, content_type: str
) -> None:
    headers = {**BEARER, "Content-Type": content_type} if content_type else BEARER
    response = client.post(PATH, content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False
    assert received == []


def test_list_of_events_in_order(client: TestClient, received: list[dict[str, Any]]) -> None:
    events = [
        payload("processed", recipients=["ann@example.org"]),
        payload("delivered"),
        payload("open", client="Thunderbird"),
    ]
    response = client.post(PATH, json=events, headers=BEARER)
    assert response.json() == {"ok": True, "received": 3}
    assert [e["event"] for e in received] == ["processed", "delivered", "open"]
    times = [e["received_at"] for e in received]
    assert times == sorted(times)
    assert len(set(times)) == 3


def test_json_without_content_type_is_sniffed(
    client: TestClient, received: list[dict[str, Any]]
) -> None:
    response = client.post(PATH, content=json.dumps(payload()).encode(), headers=BEARER)
    assert response.status_code == 200
    assert received[0]["event"] == "delivered"


def test_unknown_event_kept_as_given(client: TestClient, received: list[dict[str, Any]]) -> None:
    response = client.post(PATH, json=payload("Deferred-Later", reason="x"), headers=BEARER)
    assert response.status_code == 200
    assert received[0]["event"] == "Deferred-Later"
    assert received[0]["provider_event"] == "Deferred-Later"
    assert received[0]["raw"]["reason"] == "x"


@pytest.mark.parametrize(("posted", "ours"), [("Opened", "open"), ("BOUNCE", "bounce")])
def test_provider_names_mapped_through_one_dict(
    client: TestClient, received: list[dict[str, Any]], posted: str, ours: str
) -> None:
    client.post(PATH, json=payload(posted), headers=BEARER)
    assert received[0]["event"] == ours == EVENT_NAMES[posted.lower()]
    assert received[0]["provider_event"] == posted


@pytest.mark.parametrize(
    ("bounce", "expected"),
    [("hard", "hard"), ("Soft", "soft"), ("hard bounce", "hard"), ("", None), ("odd", "odd")],
)
def test_bounce_type(
    client: TestClient, received: list[dict[str, Any]], bounce: str, expected: str | None
) -> None:
    client.post(PATH, json=payload("bounce", bounce=bounce), headers=BEARER)
    assert received[0]["bounce"] == expected


def test_raw_is_trimmed_and_has_no_auth_data(
    client: TestClient, received: list[dict[str, Any]]
) -> None:
    body = payload(
        subject="s" * 5000,
        Authorization=f"Bearer {SECRET}",
        auth_header_value=SECRET,
        password=SECRET,
        api_key="api-" + "0" * 32,
        many=list(range(500)),
    )
    client.post(PATH, json=body, headers=BEARER)
    [event] = received
    assert SECRET not in json.dumps(event)
    assert "api-000" not in json.dumps(event)
    assert len(event["raw"]["subject"]) == 1000
    assert len(event["subject"]) == 1000
    assert len(event["raw"]["many"]) == 100


def test_sms_event(client: TestClient, received: list[dict[str, Any]]) -> None:
    body = {
        "event": "delivered",
        "time": "2024-01-01T12:00:05Z",
        "sendtime": "2024-01-01T12:00:00Z",
        "message_id": "sms-42",
        "destination": "+61400000000",
        "sender": "shared",
        "status": "delivered",
        "units": 1,
    }
    client.post(PATH, **form(body))
    [event] = received
    assert (event["channel"], event["message_id"], event["rcpt"], event["email_id"]) == (
        "sms",
        "sms-42",
        "+61400000000",
        None,
    )


def test_enqueue_failure_is_500_so_the_provider_retries(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    with TestClient(create_app(secret=SECRET, enqueue=broken), raise_server_exceptions=False) as c:
        response = c.post(PATH, json=payload(), headers=BEARER)
    assert response.status_code == 500
    assert response.json() == {"ok": False, "error": "internal error"}
    assert "broker down" not in response.text


def test_only_post_and_get_routes(client: TestClient) -> None:
    assert client.get(PATH).status_code == 405
    assert client.post("/healthz").status_code == 405
    assert client.post("/webhooks/other", json=payload(), headers=BEARER).status_code == 404


@pytest.mark.usefixtures("runtime")
def test_default_enqueue_publishes_the_task_on_email(broker: Any) -> None:
    with TestClient(create_app(secret=SECRET)) as c:
        response = c.post(PATH, json=[payload("processed"), payload()], headers=BEARER)
    assert response.status_code == 200
    published = broker.drain()
    assert [(name, queue) for name, _, queue in published] == [
        (TaskName.RECORD_EVENT, "email"),
        (TaskName.RECORD_EVENT, "email"),
    ]
    assert [args[0]["event"] for _, args, _ in published] == ["processed", "delivered"]


# -- the task -------------------------------------------------------------------------------


_batch = sent_batch


def _event(event: str = "delivered", **fields: Any) -> dict[str, Any]:
    return normalise(payload(event, **fields), received_at=1_700_000_000.0)


def _events(rt: Runtime, batch_id: str) -> list[list[dict[str, Any]]]:
    record = load_record(rt.store, batch_id)
    assert record is not None
    return [chunk.events for chunk in record.chunks]


def test_event_recorded_once_despite_duplicates(runtime: Runtime) -> None:
    batch_id = _batch(runtime, ["E1"])
    first = _event(email_id="E1", rcpt="user0@example.org")
    again = {**first, "received_at": first["received_at"] + 30}  # the provider's retry
    assert record(runtime, first) is Outcome.RECORDED
    assert record(runtime, again) is Outcome.DUPLICATE
    assert record(runtime, first) is Outcome.DUPLICATE
    [events] = _events(runtime, batch_id)
    assert len(events) == 1
    assert events[0]["event"] == "delivered"
    assert events[0]["received_at"] == first["received_at"]
    assert runtime.redis.ttl(keys.chunk_events(chunk_id_for(batch_id, 0))) > 0


def test_distinct_events_all_kept_in_order(runtime: Runtime) -> None:
    batch_id = _batch(runtime, ["E1"])
    for i, name in enumerate(["processed", "delivered", "open", "click"]):
        event = _event(name, email_id="E1", time=f"2024-01-01T12:00:0{i}Z")
        event["received_at"] += i
        assert record(runtime, event) is Outcome.RECORDED
    # Two clicks in the same second on different links are two events.
    click = _event("click", email_id="E1", time="2024-01-01T12:00:03Z", url="https://b.example")
    assert record(runtime, {**click, "received_at": click["received_at"] + 9}) is Outcome.RECORDED
    [events] = _events(runtime, batch_id)
    assert [e["event"] for e in events] == ["processed", "delivered", "open", "click", "click"]


def test_event_lands_on_the_right_chunk_only(runtime: Runtime) -> None:
    mine = _batch(runtime, ["E1", "E2"])
    other = _batch(runtime, ["E3"])
    assert record(runtime, _event(email_id="E2", rcpt="user1@example.org")) is Outcome.RECORDED
    assert [len(e) for e in _events(runtime, mine)] == [0, 1]
    assert _events(runtime, other) == [[]]
    assert _events(runtime, mine)[1][0]["email_id"] == "E2"


@pytest.mark.parametrize(
    ("event", "fields", "suppressed"),
    [
        ("bounce", {"bounce": "hard"}, True),
        ("bounce", {"bounce": "soft"}, False),
        ("bounce", {}, False),
        ("spam", {}, True),
        ("delivered", {}, False),
        ("unsubscribe", {}, False),
    ],
)
def test_hard_bounce_and_spam_suppress(
    runtime: Runtime, event: str, fields: dict[str, Any], suppressed: bool
) -> None:
    _batch(runtime, ["E1"])
    record(runtime, _event(event, email_id="E1", rcpt="Ann <Ann@Example.ORG>", **fields))
    members = {m.decode() for m in runtime.redis.smembers(keys.suppressed())}
    assert members == ({"ann@example.org"} if suppressed else set())


def test_a_bounce_older_than_a_lift_does_not_suppress_again(runtime: Runtime) -> None:
    """SMTP2GO retries a webhook for up to two days: a hard bounce from before the
    operator lifted the address must not put it back; a bounce after the lift does."""
    _batch(runtime, ["E1", "E2"])
    runtime.store.suppressions.add("ann@example.org")
    assert runtime.store.suppressions.remove("ann@example.org") == ["ann@example.org"]
    old = _event("bounce", email_id="E1", bounce="hard", time="2024-01-01T12:00:05Z")
    record(runtime, old)
    assert runtime.redis.scard(keys.suppressed()) == 0
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 5))
    record(runtime, _event("bounce", email_id="E2", bounce="hard", time=later))
    assert {m.decode() for m in runtime.redis.smembers(keys.suppressed())} == {"ann@example.org"}


def test_a_bounce_of_an_erased_address_suppresses_it_by_its_hash_only(
    runtime: Runtime,
) -> None:
    from outbox import erase

    _batch(runtime, ["E1"])
    erase("ann@example.org")
    record(runtime, _event("bounce", email_id="E1", bounce="hard", rcpt="ann@example.org"))
    members = {m.decode() for m in runtime.redis.smembers(keys.suppressed())}
    assert "ann@example.org" not in members
    assert runtime.store.suppressions.matching(["ann@example.org"]) == {"ann@example.org"}


def test_no_suppression_when_turned_off(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"suppress_on_bounce": False})
    _batch(runtime, ["E1"])
    record(runtime, _event("bounce", email_id="E1", bounce="hard"))
    assert runtime.redis.scard(keys.suppressed()) == 0


def test_unknown_email_id_waits_then_goes_unmatched(runtime: Runtime) -> None:
    batch_id = _batch(runtime, ["E1"])
    stray = _event(email_id="NOT-OURS")
    assert record(runtime, stray, last_try=False) is Outcome.NOT_YET
    assert runtime.redis.llen(keys.webhook_unmatched()) == 0
    assert record(runtime, stray, last_try=True) is Outcome.UNMATCHED
    [raw] = runtime.redis.lrange(keys.webhook_unmatched(), 0, -1)
    parked = json.loads(raw)
    assert parked["email_id"] == "NOT-OURS"
    assert "email_id" in parked["unmatched"]
    assert runtime.redis.ttl(keys.webhook_unmatched()) > 0
    assert _events(runtime, batch_id) == [[]]


def test_unmatched_list_is_bounded(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("outbox.worker.webhooks.tasks.MAX_UNMATCHED", 3)
    for i in range(5):
        record(runtime, _event(email_id=f"X{i}"))
    newest = [
        json.loads(x)["email_id"] for x in runtime.redis.lrange(keys.webhook_unmatched(), 0, -1)
    ]
    assert newest == ["X4", "X3", "X2"]


def test_late_index_is_found_on_retry(runtime: Runtime) -> None:
    event = _event("processed", email_id="E9")
    assert record(runtime, event, last_try=False) is Outcome.NOT_YET
    batch_id = _batch(runtime, ["E9"])  # the worker records the send after the webhook came
    assert record(runtime, event, last_try=False) is Outcome.RECORDED
    assert [e["event"] for e in _events(runtime, batch_id)[0]] == ["processed"]


def test_events_naming_no_message_go_unmatched(runtime: Runtime) -> None:
    sms = normalise({"event": "sms_delivered", "destination_number": "+61400000000"}, received_at=1)
    assert record(runtime, sms, last_try=False) is Outcome.UNMATCHED
    no_id = normalise({"event": "spam", "rcpt": "x@example.org"}, received_at=1.0)
    assert record(runtime, no_id, last_try=False) is Outcome.UNMATCHED
    reasons = [
        json.loads(x)["unmatched"] for x in runtime.redis.lrange(keys.webhook_unmatched(), 0, -1)
    ]
    assert reasons == ["no email_id", "no message_id"]
    # A spam complaint suppresses even when it names no message of ours.
    assert runtime.redis.sismember(keys.suppressed(), "x@example.org")


def test_task_looks_again_for_an_unknown_email_id_shortly(runtime: Runtime, broker: Any) -> None:
    event = _event(email_id="LATE")
    assert run_task(record_event, event) == "not_yet"
    [(member, due)] = runtime.redis.zrange(keys.parked(), 0, -1, withscores=True)
    call = Call.from_member(member)
    assert (call.task, call.args) == (TaskName.RECORD_EVENT, (event, 1))
    assert due - runtime.store.now() == pytest.approx(UNMATCHED_DELAYS[0], abs=0.1)
    assert broker.drain() == []
    assert runtime.redis.llen(keys.webhook_unmatched()) == 0


def test_task_parks_after_its_last_retry(runtime: Runtime, broker: Any) -> None:
    outcome = run_task(record_event, _event(email_id="LATE"), len(UNMATCHED_DELAYS))
    assert outcome == "unmatched"
    assert broker.drain() == []
    assert runtime.redis.llen(keys.webhook_unmatched()) == 1


def test_task_records_and_rejects_non_events(runtime: Runtime) -> None:
    batch_id = _batch(runtime, ["E1"])
    assert record_event.run(_event(email_id="E1")) == "recorded"
    assert record_event.run(["not", "a", "dict"]) == "invalid"
    assert record_event.run({"email_id": "E1"}) == "invalid"
    assert len(_events(runtime, batch_id)[0]) == 1
