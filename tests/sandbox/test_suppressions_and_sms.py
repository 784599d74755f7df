"""Suppressions (``email_address``, ``reasons``) and SMS (``destination``, ``content``)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import field_error, ok

pytestmark = pytest.mark.integration


def test_suppression_add_view_remove(api: httpx.Client) -> None:
    added = ok(
        api.post(
            "/suppression/add",
            json={"email_address": "gone@example.org", "block_description": "left us"},
        )
    )
    assert added == {
        "added": True,
        "block_description": "left us",
        "email_address": "gone@example.org",
    }
    ok(api.post("/suppression/add", json={"email_address": "spam.test"}))

    view = ok(api.post("/suppression/view", json={}))
    assert view["total_results"] == 2
    assert view["continue_token"] is None
    first = view["results"][0]
    assert first["email_address"] == "gone@example.org"
    assert first["reason"] == "manual"
    assert first["block_description"] == "left us"
    assert first["timestamp"]

    one = ok(api.post("/suppression/view", json={"email_address": "spam.test"}))
    assert [r["email_address"] for r in one["results"]] == ["spam.test"]

    removed = ok(
        api.post(
            "/suppression/remove",
            json={"email_address": "gone@example.org", "reasons": ["manual", "spam"]},
        )
    )
    assert removed["suppressions"] == [
        {"email_address": "gone@example.org", "reason": "manual", "removed": True},
        {"email_address": "gone@example.org", "reason": "spam", "removed": False},
    ]
    left = ok(api.post("/suppression/view", json={}))
    assert [r["email_address"] for r in left["results"]] == ["spam.test"]


def test_suppression_view_pages(api: httpx.Client) -> None:
    for i in range(5):
        ok(api.post("/suppression/add", json={"email_address": f"u{i}@example.org"}))
    seen: list[str] = []
    token = None
    while True:
        page = ok(api.post("/suppression/view", json={"limit": 2, "continue_token": token}))
        seen += [r["email_address"] for r in page["results"]]
        token = page["continue_token"]
        if token is None:
            break
    assert seen == [f"u{i}@example.org" for i in range(5)]
    assert field_error(api.post("/suppression/view", json={"continue_token": "forged"})) == (
        "continue_token"
    )


@pytest.mark.parametrize(
    ("path", "body", "fieldname"),
    [
        ("/suppression/add", {}, "email_address"),
        ("/suppression/add", {"email": "gone@example.org"}, "email_address"),
        ("/suppression/add", {"email_address": "not a thing"}, "email_address"),
        ("/suppression/remove", {"email_address": "gone@example.org"}, "reasons"),
        ("/suppression/remove", {"email_address": "gone@example.org", "reasons": ["x"]}, "reasons"),
    ],
    ids=[
        "missing",
        "reference's field name",
        "neither address nor domain",
        "no reasons",
        "bad reason",
    ],
)
def test_invalid_suppression_requests(
    api: httpx.Client, path: str, body: dict[str, object], fieldname: str
) -> None:
    assert field_error(api.post(path, json=body)) == fieldname


def test_sms_send_answers_statuses_and_one_message_per_destination(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    body = {"destination": ["+61400000000", "+12025550959"], "content": "Code 123456"}
    data = ok(api.post("/sms/send", json=body))
    assert data["total_sent"] == 2
    assert data["statuses"] == {"queued": 2}
    assert [m["destination"] for m in data["messages"]] == body["destination"]
    assert all(m["message_id"] and m["status"] == "queued" for m in data["messages"])
    [message] = sandbox.messages()
    assert message["endpoint"] == "sms/send"
    assert message["destination"] == body["destination"]
    assert message["content"] == "Code 123456"
    assert message["message_ids"] == [m["message_id"] for m in data["messages"]]
    assert message["units"] == 1


def test_sms_with_the_reference_fields_is_refused_naming_destination(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    body = {"to": ["+61400000000"], "message": "Your verification code is 123456"}
    assert field_error(api.post("/sms/send", json=body)) == "destination"
    assert sandbox.messages() == []


@pytest.mark.parametrize(
    ("body", "fieldname"),
    [
        ({"content": "hi"}, "destination"),
        ({"destination": [], "content": "hi"}, "destination"),
        ({"destination": ["0400 000 000"], "content": "hi"}, "destination"),
        ({"destination": [f"+6140000{i:04d}" for i in range(101)], "content": "hi"}, "destination"),
        ({"destination": ["+61400000000"]}, "content"),
        ({"destination": ["+61400000000"], "content": "hi", "sender": "Shop"}, "sender"),
    ],
    ids=["no destination", "empty", "not E.164", "over 100", "no content", "bad sender"],
)
def test_invalid_sms_is_refused(api: httpx.Client, body: dict[str, object], fieldname: str) -> None:
    assert field_error(api.post("/sms/send", json=body)) == fieldname


def test_long_sms_counts_several_units(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "x" * 161}))
    ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "é" * 160}))
    ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "ж" * 71}))
    assert [m["units"] for m in sandbox.messages()] == [2, 1, 2]
    summary = ok(api.post("/sms/summary", json={}))
    assert summary["total_messages"] == 3
    assert summary["total_units"] == 5


def test_sms_views_carry_request_id_inside_data(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(api.post("/sms/send", json={"destination": ["+61400000000"], "content": "hello"}))
    response = api.post("/sms/view-sent", json={})
    assert response.status_code == 200
    payload = response.json()
    assert "request_id" not in payload
    assert payload["data"]["request_id"]
    [sent] = payload["data"]["messages"]
    assert sent["destination_address"] == "+61400000000"
    assert sent["content"] == "hello"

    inbound = {
        "source_address": "+61400000000",
        "destination_address": "+61499999999",
        "content": "STOP",
    }
    assert httpx.post(f"{sandbox.url}/_sandbox/sms/inbound", json=inbound).status_code == 200
    received = api.post("/sms/view-received", json={}).json()
    assert "request_id" not in received
    assert received["data"]["request_id"]
    assert [m["content"] for m in received["data"]["messages"]] == ["STOP"]
