"""An idempotency key names one message: the same message returns the first handle
(``duplicate=True``); another message with the key raises ``IdempotencyConflict``."""

from __future__ import annotations

import pytest

from outbox import IdempotencyConflict, OutboxError, send_email, send_sms
from outbox.worker.runtime import Runtime


def test_the_same_message_with_the_key_returns_the_first_handle(runtime: Runtime) -> None:
    first = send_email(
        "s@example.com", ["a@example.org"], "Hi", text_body="x", idempotency_key="k1"
    )
    again = send_email(
        "s@example.com", ["a@example.org"], "Hi", text_body="x", idempotency_key="k1"
    )
    assert again.id == first.id
    assert again.duplicate
    assert not first.duplicate


@pytest.mark.parametrize(
    "change",
    [{"to": ["b@example.org"]}, {"subject": "Other"}, {"text_body": "y"}, {"tenant": "acme"}],
)
def test_another_message_with_the_key_is_a_conflict(runtime: Runtime, change: dict) -> None:
    message = {"to": ["a@example.org"], "subject": "Hi", "text_body": "x"}
    first = send_email("s@example.com", **message, idempotency_key="receipt-None")
    with pytest.raises(IdempotencyConflict) as caught:
        send_email("s@example.com", **{**message, **change}, idempotency_key="receipt-None")
    assert isinstance(caught.value, OutboxError)
    assert caught.value.first == first.id
    assert "receipt-None" in str(caught.value)


def test_a_key_is_not_shared_across_kinds_of_message(runtime: Runtime) -> None:
    send_sms(["+61400000000"], "Your code", idempotency_key="k2")
    with pytest.raises(IdempotencyConflict):
        send_email("s@example.com", ["a@example.org"], "Hi", text_body="x", idempotency_key="k2")


def test_redis_unreachable_is_an_outbox_error_from_every_public_call() -> None:
    import redis

    from outbox import Unavailable, retry_failed, status
    from outbox.core.settings import Settings
    from outbox.worker.runtime import set_runtime
    from support.procs import free_port

    closed = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    set_runtime(Runtime.from_settings(Settings(), redis_client=closed))
    try:
        for call in (lambda: status("e" * 32), lambda: retry_failed("e" * 32)):
            with pytest.raises(Unavailable) as caught:
                call()
            assert isinstance(caught.value, OutboxError)
            assert isinstance(caught.value, ConnectionError)
    finally:
        set_runtime(None)
