"""The Flask and FastAPI examples, driven by each framework's test client on fakeredis and
the in-memory broker: enqueue from a request, answer the handle, read its status."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from outbox.core.settings import Settings
from outbox.core.states import State
from outbox.testing import FakeOutbox
from outbox.worker.runtime import Runtime, set_runtime

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette asks for httpx2 on import, runs on httpx
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.usefixtures("runtime")


@dataclass
class Answer:
    status: int
    body: Any


class Client:
    """The two test clients behind one face: ``post`` and ``get`` give an :class:`Answer`."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        if framework == "flask":
            from examples.flask_app import app

            self._client: Any = app.test_client()
        else:
            from examples.fastapi_app import app as fastapi_app

            self._client = TestClient(fastapi_app)

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        return self._answer(self._client.post(path, json=body))

    def get(self, path: str) -> Answer:
        return self._answer(self._client.get(path))

    def _answer(self, response: Any) -> Answer:
        body = response.get_json() if self.framework == "flask" else response.json()
        if self.framework == "fastapi" and isinstance(body, dict) and "detail" in body:
            body = body["detail"]  # HTTPException's wrapping
        return Answer(response.status_code, body)


@pytest.fixture(params=["flask", "fastapi"])
def client(request: pytest.FixtureRequest) -> Client:
    return Client(request.param)


def test_a_request_enqueues_and_answers_the_handle(
    client: Client, memory_broker: Any, runtime: Runtime
) -> None:
    answer = client.post("/receipts", {"to": "ann@example.org", "order": 42})
    assert answer.status == 202
    handle_id = answer.body["id"]
    assert answer.body["status"] == f"/sends/{handle_id}"
    [(task, (chunk_id, payload), _)] = memory_broker.drain()
    assert (task, payload["to"], payload["subject"]) == (
        "outbox.send_email",
        ["ann@example.org"],
        "Your receipt for order 42",
    )

    shown = client.get(answer.body["status"])
    assert (shown.status, shown.body["state"], shown.body["id"]) == (200, "queued", handle_id)

    # A worker sends it; the same request for status now says so.
    runtime.store.batches.finish(chunk_id, State.SENT, limit=runtime.send_limit, email_id="e-1")
    shown = client.get(answer.body["status"])
    assert shown.body["state"] == "sent"
    assert shown.body["chunks"][0]["email_id"] == "e-1"


def test_a_retried_request_sends_once(client: Client, memory_broker: Any) -> None:
    first = client.post("/receipts", {"to": "ann@example.org", "order": 7})
    again = client.post("/receipts", {"to": "ann@example.org", "order": 7})
    assert again.body["id"] == first.body["id"]
    assert len(memory_broker.drain()) == 1


def test_bad_input_is_answered_422_naming_the_field(client: Client, memory_broker: Any) -> None:
    answer = client.post("/receipts", {"to": "ann@", "order": 1})
    assert answer.status == 422
    assert set(answer.body["errors"]) == {"to.0"}
    assert memory_broker.drain() == []


def test_an_unknown_send_is_404(client: Client) -> None:
    assert client.get("/sends/" + "0" * 32).status == 404


# -- the examples' own tests of what they send, as an app's would be: ``outbox_fake`` ------


def test_the_receipt_is_the_one_the_app_means(client: Client, outbox_fake: FakeOutbox) -> None:
    first = client.post("/receipts", {"to": "ann@example.org", "order": 42})
    again = client.post("/receipts", {"to": "ann@example.org", "order": 42})
    assert (first.status, first.body["duplicate"]) == (202, False)
    assert (again.status, again.body["duplicate"], again.body["id"]) == (
        202,
        True,
        first.body["id"],
    )
    (sent,) = outbox_fake.messages
    assert (sent.to, sent.subject, sent.idempotency_key) == (
        ["ann@example.org"],
        "Your receipt for order 42",
        "receipt-42",
    )


def test_another_receipt_for_the_same_order_is_409(client: Client, outbox_fake: FakeOutbox) -> None:
    assert client.post("/receipts", {"to": "ann@example.org", "order": 7}).status == 202
    assert client.post("/receipts", {"to": "bob@example.org", "order": 7}).status == 409
    assert [m.to for m in outbox_fake.messages] == [["ann@example.org"]]


def test_no_order_no_receipt(client: Client, outbox_fake: FakeOutbox) -> None:
    """Two customers without an order number must not share the key ``receipt-None``."""
    assert client.post("/receipts", {"to": "ann@example.org"}).status == 422
    assert outbox_fake.messages == []


def test_redis_unreachable_answers_503(client: Client, unreachable_redis: Runtime) -> None:
    assert client.post("/receipts", {"to": "ann@example.org", "order": 3}).status == 503
    assert client.get("/sends/" + "0" * 32).status == 503


def test_an_apps_test_with_outbox_fake_needs_no_redis(
    client: Client, unreachable_redis: Runtime, outbox_fake: FakeOutbox
) -> None:
    """The same app, the same Redis nobody answers: under ``outbox_fake`` it sends."""
    assert client.post("/receipts", {"to": "ann@example.org", "order": 3}).status == 202
    assert [m.subject for m in outbox_fake.messages] == ["Your receipt for order 3"]


@pytest.fixture
def unreachable_redis() -> Iterator[Runtime]:
    """A runtime whose records are on a loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        SMTP2GO_API_KEY="api-" + "0" * 32,
        SMTP2GO_BASE_URL="http://127.0.0.1:9/v3",
        OUTBOX_REDIS_URL=f"redis://127.0.0.1:{port}/0",
    )
    rt = Runtime.from_settings(settings)
    set_runtime(rt)
    yield rt
    set_runtime(None)
