"""The webhook receiver under generated input: any body, any content type, any
credentials. It answers 200 (and publishes well-formed events), 400, 401 or 413, never
500 and never a hang; the event parser either refuses a payload or returns the one
normalised shape, bounded in size, whose identity (``digest``) does not depend on the
encoding or on when it arrived.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from outbox.worker.webhooks.app import create_app
from outbox.worker.webhooks.parse import InvalidPayload, digest, event_key, normalise

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's test client warns on import
    from starlette.testclient import TestClient

SECRET = "property-webhook-secret"
MAX_BODY = 20_000
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NORMALISED_KEYS = {
    "event",
    "provider_event",
    "channel",
    "event_id",
    "email_id",
    "message_id",
    "rcpt",
    "recipients",
    "time",
    "sendtime",
    "bounce",
    "host",
    "message",
    "context",
    "sender",
    "subject",
    "received_at",
    "raw",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
event_names = st.sampled_from(
    ["delivered", "bounce", "open", "click", "spam", "processed", "sms_delivered", "sms_failed"]
) | st.text(max_size=80)
payloads = st.fixed_dictionaries(
    {"event": event_names | json_values},
    optional={
        "email_id": st.text(max_size=30) | json_values,
        "rcpt": st.emails() | st.text(max_size=40),
        "recipients": st.lists(st.emails(), max_size=5) | st.text(max_size=60),
        "time": st.text(max_size=30),
        "bounce": st.sampled_from(["hard", "soft", "Hard bounce", ""]) | json_values,
        "message_id": st.text(max_size=30),
        "destination": st.text(max_size=20),
        "destination_number": st.text(max_size=20),
        "id": st.text(max_size=40) | json_values,
        "auth_header_value": st.just(SECRET),
        "extra": json_values,
    },
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/plain",
        "application/octet-stream",
        "",
        "application/vnd.api+json",
    ]
)


@pytest.fixture
def receiver() -> Iterator[tuple[TestClient, list[dict[str, Any]]]]:
    published: list[dict[str, Any]] = []
    app = create_app(secret=SECRET, enqueue=published.append, max_body=MAX_BODY)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, published


def _check_events(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert set(event) == NORMALISED_KEYS
        assert isinstance(event["event"], str)
        assert event["event"]
        assert event["channel"] in {"email", "sms"}
        assert isinstance(event["recipients"], list)
        encoded = json.dumps(event)  # the broker carries it as JSON
        assert SECRET not in encoded
        assert len(encoded) < 200_000


@PROPERTY
@given(body=st.binary(max_size=3000) | st.text(max_size=3000).map(str.encode), media=content_types)
@example(body=b"[" * 10_000 + b"]" * 10_000, media="application/json")
@example(body=b"\xff\xfe", media="application/x-www-form-urlencoded")
@example(
    body=b"--xyz\r\nContent-Disposition: form-data; name=event\r\n\r\nopen\r\n--xyz--",
    media="multipart/form-data; boundary=xyz",
)
def test_any_body_is_answered_without_a_server_error(
    receiver: tuple[TestClient, list[dict[str, Any]]], body: bytes, media: str
) -> None:
    """Any bytes under any content type: a definite answer, never a server error.

    Fault: Any body, content type or `Authorization` header posted to the webhook
        receiver (generated; this test and its siblings)
    Outcome: 200 with each event in the one normalised shape, or 400, 401, 413; never a
        500; a repeated event (or the same one as a form and as JSON) has the same key
        (SMTP2GO's `id`, else a digest), so it is recorded once
    """
    client, published = receiver
    published.clear()
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": media}
    response = client.post("/webhooks/smtp2go", content=body, headers=headers)
    assert response.status_code in {200, 400, 413}, response.text
    if response.status_code == 200:
        assert response.json()["received"] == len(published)
        _check_events(published)
    else:
        assert published == []
        assert response.json()["ok"] is False


@PROPERTY
@given(events=st.lists(payloads, min_size=1, max_size=4), as_form=st.booleans())
def test_generated_events_are_published_in_the_normalised_shape(
    receiver: tuple[TestClient, list[dict[str, Any]]], events: list[dict[str, Any]], as_form: bool
) -> None:
    client, published = receiver
    published.clear()
    headers = {"Authorization": f"Bearer {SECRET}"}
    if as_form:
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in events[0].items()}
        response = client.post(
            "/webhooks/smtp2go",
            content=urlencode(flat),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        response = client.post("/webhooks/smtp2go", json=events, headers=headers)
    assert response.status_code in {200, 400, 413}, response.text
    if response.status_code == 200:
        _check_events(published)
        assert len(published) == (1 if as_form else len(events))
    else:
        assert published == []


@PROPERTY
@given(
    authorization=st.binary(max_size=80).filter(lambda b: not set(b) & {0, 10, 13})
    | st.sampled_from([b"Bearer " + SECRET.encode()[:-1], b"Bearer " + SECRET.encode() + b" x"])
)
def test_only_the_secret_opens_the_door(
    receiver: tuple[TestClient, list[dict[str, Any]]], authorization: bytes
) -> None:
    client, published = receiver
    published.clear()
    response = client.post(
        "/webhooks/smtp2go",
        json={"event": "open", "email_id": "E1"},
        headers={"Authorization": authorization},
    )
    assert response.status_code == 401
    assert published == []


@PROPERTY
@given(payload=payloads, later=st.floats(min_value=0, max_value=1e6))
def test_normalise_refuses_or_returns_one_shape_with_a_stable_digest(
    payload: dict[str, Any], later: float
) -> None:
    try:
        first = normalise(payload, received_at=1_700_000_000.0)
    except InvalidPayload:
        return
    _check_events([first])
    again = normalise(payload, received_at=1_700_000_000.0 + later)
    assert digest(first) == digest(again)  # a provider retry is the same event
    assert event_key(first) == event_key(again)
    if all(isinstance(v, str) for v in payload.values()):
        # The same flat event posted as a form (SMTP2GO's default) is the same event too.
        from outbox.worker.webhooks.parse import parse_form

        [as_form] = parse_form(urlencode(payload).encode())
        assert digest(normalise(as_form, received_at=0.0)) == digest(first)
        assert event_key(normalise(as_form, received_at=0.0)) == event_key(first)
