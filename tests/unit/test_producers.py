"""Producers on fakeredis and an in-memory broker: validation, chunking, records."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery import signature

from outbox import ValidationError, send_email, send_mime, send_sms, send_template, status
from outbox.core.states import State
from outbox.core.store import keys
from outbox.worker.runtime import Runtime

pytestmark = pytest.mark.usefixtures("runtime")


def rcpts(n: int, domain: str = "example.com") -> list[str]:
    return [f"user{i}@{domain}" for i in range(n)]


@pytest.mark.parametrize(("n", "chunks"), [(1, 1), (100, 1), (101, 2), (250, 3)])
def test_send_email_chunks_and_records(memory_broker: Any, n: int, chunks: int) -> None:
    handle = send_email("Shop <shop@example.com>", rcpts(n), "Hello", text_body="Hi")
    assert (handle.chunks, handle.recipients) == (chunks, n)
    published = memory_broker.drain()
    assert len(published) == chunks
    sent_to = [a for _, (chunk_id, payload), _ in published for a in payload["to"]]
    assert sorted(sent_to) == sorted(rcpts(n))
    assert all(p[0] == "outbox.send_email" for p in published)
    record = status(handle.id)
    assert record.state is State.QUEUED
    assert record.counts["queued"] == chunks
    assert [c.id for c in record.chunks] == [f"{handle.id}.{i}" for i in range(chunks)]


def test_large_batches_fan_out_from_the_bulk_queue(memory_broker: Any, runtime: Runtime) -> None:
    """Fifteen chunks: the producer publishes one fan-out task, a worker the rest."""
    from outbox.worker.tasks import fan_out

    handle = send_email("shop@example.com", rcpts(1500), "Hello", text_body="Hi")
    assert memory_broker.drain() == [("outbox.fan_out", [handle.id], "bulk")]
    assert fan_out(handle.id) == 15
    published = memory_broker.drain()
    assert {(name, q) for name, _, q in published} == {("outbox.send_email", "bulk")}
    assert sorted(a for _, (_, p), _ in published for a in p["to"]) == sorted(rcpts(1500))


def test_duplicates_across_lists_sent_once(memory_broker: Any) -> None:
    handle = send_email(
        "shop@example.com",
        ["a@example.com", "A@example.com"],
        "Hi",
        text_body="x",
        cc=["a@example.com", "b@example.com"],
        bcc=["b@example.com", "c@example.com"],
    )
    [(_, (_, payload), _)] = memory_broker.drain()
    assert (payload["to"], payload["cc"], payload["bcc"]) == (
        ["a@example.com"],
        ["b@example.com"],
        ["c@example.com"],
    )
    assert handle.recipients == 3


def test_cc_travels_with_to_chunks(memory_broker: Any) -> None:
    send_email("s@example.com", rcpts(150), "Hi", text_body="x", cc=rcpts(120, "cc.example.com"))
    payloads = [p for _, (_, p), _ in memory_broker.drain()]
    assert [len(p.get("cc", [])) for p in payloads] == [100, 20]


def test_cc_needing_more_chunks_than_to_is_refused(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_email("s@example.com", ["a@example.com"], "Hi", text_body="x", cc=rcpts(101))
    assert "cc" in info.value.errors
    assert memory_broker.drain() == []


def test_every_bad_field_is_named_and_nothing_is_recorded(
    memory_broker: Any, runtime: Runtime
) -> None:
    with pytest.raises(ValidationError) as info:
        send_email(
            "not an address",
            ["ok@example.com", "bad@", "x@example.com\r\nBcc: evil@example.com"],
            "Hi",
        )
    errors = info.value.errors
    assert {"to.1", "to.2"} <= set(errors)
    assert "sender" in errors
    assert isinstance(info.value, ValueError)
    assert memory_broker.drain() == []
    assert runtime.redis.keys(keys.PREFIX + "*") == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"subject": "x" * 256}, "subject"),
        ({"text_body": None}, "html_body"),
        ({"subject": "a\r\nBcc: evil@example.com"}, "subject"),
        ({"custom_headers": {"Content-Type": "text/plain"}}, "custom_headers.0.header"),
        ({"attachments": [{"filename": "a.txt", "fileblob": "!!notbase64"}]}, "attachments.0"),
        ({"send_at": 12.5, "idempotency_key": ""}, "idempotency_key"),
    ],
)
def test_field_errors(kwargs: dict[str, Any], field: str, memory_broker: Any) -> None:
    base: dict[str, Any] = {"subject": "Hi", "text_body": "x"}
    with pytest.raises(ValidationError) as info:
        send_email("s@example.com", ["a@example.com"], **{**base, **kwargs})
    assert any(name.startswith(field) for name in info.value.errors), info.value.errors
    assert memory_broker.drain() == []


def test_idempotency_key_returns_first_handle(memory_broker: Any) -> None:
    first = send_email("s@example.com", rcpts(3), "Hi", text_body="x", idempotency_key="order-1")
    second = send_email("s@example.com", rcpts(3), "Hi", text_body="x", idempotency_key="order-1")
    assert second.id == first.id
    assert second.duplicate
    assert len(memory_broker.drain()) == 1


def test_template_requires_id_and_template_send_needs_no_subject(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_template("s@example.com", ["a@example.com"], template_id="", template_data={})
    assert "template_id" in info.value.errors
    handle = send_template("s@example.com", ["a@example.com"], "welcome-1", {"name": "Ann"})
    [(name, (_, payload), _)] = memory_broker.drain()
    assert name == "outbox.send_template"
    assert payload["template_data"] == {"name": "Ann"}
    assert status(handle.id).kind == "template"


def test_sms_validates_e164_and_chunks(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_sms(["+61400000000", "0400 000 000"], "code 1234")
    assert "to.1" in info.value.errors
    numbers = [f"+6140000{i:04d}" for i in range(150)]
    handle = send_sms(numbers, "code 1234")
    published = memory_broker.drain()
    assert handle.chunks == 2
    assert {q for _, _, q in published} == {"sms"}
    assert [len(p["destination"]) for _, (_, p), _ in published] == [100, 50]
    assert all(p["content"] == "code 1234" for _, (_, p), _ in published)


def test_mime_needs_recipients(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_mime("Subject: hi\r\n\r\nbody")
    assert "mime_email" in info.value.errors
    handle = send_mime("From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody")
    assert handle.recipients == 1
    assert len(memory_broker.drain()) == 1


def test_locally_suppressed_recipients_are_rejected(memory_broker: Any, runtime: Runtime) -> None:
    runtime.redis.sadd(keys.suppressed(), "b@example.com")
    handle = send_email("s@example.com", ["a@example.com", "B@example.com"], "Hi", text_body="x")
    assert handle.rejected == ("B@example.com",)
    [(_, (_, payload), _)] = memory_broker.drain()
    assert payload["to"] == ["a@example.com"]
    assert status(handle.id).rejected == ["B@example.com"]


def test_send_at_far_ahead_is_parked_not_published(memory_broker: Any, runtime: Runtime) -> None:
    handle = send_email(
        "s@example.com", ["a@example.com"], "Hi", text_body="x", send_at=time.time() + 3600
    )
    assert memory_broker.drain() == []
    assert runtime.store.parked.count() == 1
    assert status(handle.id).send_at is not None


def test_callback_is_recorded(memory_broker: Any) -> None:
    sig = signature("myapp.tasks.on_sent", kwargs={"order": 7})
    handle = send_email("s@example.com", ["a@example.com"], "Hi", text_body="x", callback=sig)
    record = status(handle.id)
    assert record.callback is not None
    assert record.callback["task"] == "myapp.tasks.on_sent"


def test_options_are_keyword_only_and_a_subject_is_optional(memory_broker: Any) -> None:
    """The API takes an email without a subject; the options never travel by position."""
    handle = send_email("s@example.com", ["a@example.com"], text_body="no subject")
    [(_, (_, payload), _)] = memory_broker.drain()
    assert "subject" not in payload
    assert handle.recipients == 1
    with pytest.raises(TypeError):
        send_sms(["+61400000001"], "hi", None, "key-1")  # type: ignore[misc]


def test_a_send_without_a_body_names_the_bodies_it_takes(memory_broker: Any) -> None:
    with pytest.raises(ValidationError) as info:
        send_email("s@example.com", ["a@example.com"], "Hi")
    assert info.value.errors == {"html_body": "give html_body or text_body"}
    assert "template_id" not in str(info.value)  # send_email takes none


@pytest.mark.parametrize("template_id", ["", None])
def test_a_template_without_an_id_names_only_the_id(
    memory_broker: Any, template_id: str | None
) -> None:
    with pytest.raises(ValidationError) as info:
        send_template("s@example.com", ["a@example.com"], template_id)  # type: ignore[arg-type]
    assert info.value.errors == {"template_id": "a template id is required"}
    assert "body" not in str(info.value)  # send_template takes no body
    assert memory_broker.drain() == []


def test_an_unreachable_broker_still_returns_the_handle_and_the_relay_publishes_it(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is the outbox: once written the message will go."""
    from outbox.worker.celery_app import app

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app.conf.broker_transport_options = {"max_retries": 0}
    app._pool = None
    app.amqp._producer_pool = None
    handle = send_email("s@example.com", ["a@example.com"], "Hi", text_body="x")
    assert status(handle.id).state is State.QUEUED
    [(call, _)] = runtime.store.parked.take(lease=1).calls
    assert call.chunk == f"{handle.id}.0"


def test_an_unreachable_redis_raises_enqueue_error_and_records_nothing() -> None:
    import redis

    from outbox import EnqueueError
    from outbox.core.settings import Settings
    from outbox.worker.runtime import set_runtime

    settings = Settings.model_validate({"OUTBOX_REDIS_URL": "redis://127.0.0.1:1/4"})
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    set_runtime(Runtime.from_settings(settings, redis_client=client))
    try:
        with pytest.raises(EnqueueError) as info:
            send_email("s@example.com", ["a@example.com"], "Hi", text_body="x")
    finally:
        set_runtime(None)
    assert info.value.recorded is False
    assert "nothing was recorded" in str(info.value)
