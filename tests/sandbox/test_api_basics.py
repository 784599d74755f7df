"""Authentication, the error shape, and answers to requests that are not API calls."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import email, ok

pytestmark = pytest.mark.integration


def test_key_in_the_header_is_accepted(sandbox: Sandbox) -> None:
    response = httpx.post(
        f"{sandbox.base_url}/email/send",
        json=email(),
        headers={"X-Smtp2go-Api-Key": sandbox.api_key},
    )
    ok(response)


def test_key_in_the_body_is_accepted(sandbox: Sandbox) -> None:
    response = httpx.post(f"{sandbox.base_url}/email/send", json=email(api_key=sandbox.api_key))
    ok(response)
    assert len(sandbox.messages()) == 1


@pytest.mark.parametrize(
    ("headers", "extra", "message"),
    [
        ({}, {}, "missing"),
        ({"X-Smtp2go-Api-Key": "api-" + "0" * 32}, {}, "invalid"),
        ({}, {"api_key": "api-" + "1" * 32}, "invalid"),
        ({"Authorization": "Bearer " + "api-" + "2" * 32}, {}, "invalid"),
    ],
    ids=["no key", "other key in header", "other key in body", "other key as a bearer token"],
)
def test_missing_or_wrong_key_is_401(
    sandbox: Sandbox, headers: dict[str, str], extra: dict[str, str], message: str
) -> None:
    response = httpx.post(f"{sandbox.base_url}/email/send", json=email(**extra), headers=headers)
    assert response.status_code == 401
    payload = response.json()
    assert payload["request_id"]
    assert payload["data"]["error_code"] == "E_ApiResponseCodes.API_KEY_INVALID"
    assert message in payload["data"]["error"]
    assert sandbox.messages() == []
    assert sandbox.stats()["unauthorized"] == 1


def test_body_that_is_not_a_json_object_is_400(api: httpx.Client) -> None:
    for content in (b"{not json", b"[1, 2]"):
        response = api.post("/email/send", content=content)
        assert response.status_code == 400
        assert (
            response.json()["data"]["error_code"] == "E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD"
        )


def test_unknown_endpoint_is_404_in_the_api_shape(api: httpx.Client) -> None:
    response = api.post("/email/nonsense", json={})
    assert response.status_code == 404
    assert response.json()["data"]["error_code"] == "E_ApiResponseCodes.ENDPOINT_NOT_FOUND"


def test_only_post_is_answered(api: httpx.Client) -> None:
    assert api.get("/email/send").status_code == 405


def test_every_endpoint_of_the_api_answers(api: httpx.Client) -> None:
    """Each path exists; an empty body is either served or refused naming a field."""
    paths = [
        "email/send", "email/mime", "email/batch",
        "template/add", "template/edit", "template/delete", "template/search", "template/view",
        "webhook/add", "webhook/view", "webhook/edit", "webhook/remove",
        "stats/email_summary", "stats/email_bounces", "stats/email_cycle",
        "stats/email_history", "stats/email_spam", "stats/email_unsubs",
        "activity/search",
        "suppression/add", "suppression/view", "suppression/remove",
        "sms/send", "sms/view-received", "sms/view-sent", "sms/summary",
    ]  # fmt: skip
    for path in paths:
        response = api.post(f"/{path}", json={})
        assert response.status_code in (200, 400), (path, response.text)
        if response.status_code == 400:
            assert response.json()["data"]["field_validation_errors"]["fieldname"], path


def test_stats_count_requests_by_endpoint(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(api.post("/email/send", json=email()))
    api.post("/email/send", json=email(to=[]))
    ok(api.post("/stats/email_cycle", json={}))
    stats = sandbox.stats()
    assert stats["requests"] == 3
    assert stats["accepted"] == 2
    assert stats["invalid"] == 1
    assert stats["messages"] == 1
    assert stats["by_endpoint"]["email/send"] == {
        "requests": 2,
        "accepted": 1,
        "rate_limited": 0,
        "injected_failures": 0,
        "soft_failed": 0,
    }
    assert stats["by_endpoint"]["stats/email_cycle"]["accepted"] == 1


def test_reset_forgets_everything_and_restores_the_start_config(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    start = httpx.get(f"{sandbox.url}/_sandbox/config").json()
    ok(api.post("/email/send", json=email()))
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    sandbox.configure(rate="100/s", latency_ms=5, fail_next=3, verified_domains=["a.test"])
    sandbox.reset()
    assert sandbox.messages() == []
    assert sandbox.stats()["requests"] == 0
    assert httpx.get(f"{sandbox.url}/_sandbox/config").json() == start
    view = ok(api.post("/suppression/view", json={}))
    assert view["results"] == []


def test_config_answers_the_resulting_config_and_refuses_unknown_keys(sandbox: Sandbox) -> None:
    response = httpx.post(
        f"{sandbox.url}/_sandbox/config", json={"rate": "20/s", "latency_ms": 0, "fail_next": 2}
    )
    assert response.status_code == 200
    config = response.json()
    assert config["rate"] == "20/s"
    assert config["fail_next"] == 2
    for bad in ({"rate": "fast"}, {"fail_rate": 2}, {"no_such_setting": 1}, {"fail_next": -1}):
        response = httpx.post(f"{sandbox.url}/_sandbox/config", json=bad)
        assert response.status_code == 400, bad
        assert response.json()["field"] == next(iter(bad))
    assert httpx.get(f"{sandbox.url}/_sandbox/config").json()["rate"] == "20/s"


def test_messages_can_be_polled_incrementally(api: httpx.Client, sandbox: Sandbox) -> None:
    for _ in range(3):
        ok(api.post("/email/send", json=email()))
    page = httpx.get(f"{sandbox.url}/_sandbox/messages", params={"since": 1}).json()
    assert [m["index"] for m in page["messages"]] == [1, 2]
    assert page["next"] == 3
    empty = httpx.get(f"{sandbox.url}/_sandbox/messages", params={"since": 3}).json()
    assert empty == {"messages": [], "next": 3}


def test_request_bodies_are_held_to_the_2026_limits(api: httpx.Client) -> None:
    """50 MB for /email/* and 1 MB for every other call, counted as received (developer
    changelog, 2026-06-11): a 1.2 MB email goes, a 1.2 MB template does not."""
    big = "x" * 1_200_000
    ok(api.post("/email/send", json=email(text_body=big)))
    template = {
        "id": "receipt-1", "template_name": "Receipt", "subject": "s",
        "html_body": big, "text_body": "t",
    }  # fmt: skip
    assert api.post("/template/add", json=template).status_code == 413
    over = api.post("/email/send", content=b'{"x":"' + b"x" * 50_000_000 + b'"}')
    assert over.status_code == 413
