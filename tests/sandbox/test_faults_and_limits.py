"""The shared rate limit, 429 storms, injected failures and answers held past a timeout."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import email, ok

pytestmark = pytest.mark.integration


def test_rate_limit_answers_429_with_headers(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(rate="5/s")
    responses = [api.post("/email/send", json=email()) for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    for response in responses:
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert int(response.headers["X-RateLimit-Reset"]) in (0, 1)
    refused = responses[-1]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    data = refused.json()["data"]
    assert refused.json()["request_id"]
    assert data["error_code"] == "E_ApiResponseCodes.RATE_LIMIT_EXCEEDED"
    stats = sandbox.stats()
    assert stats["rate_limited"] == 3
    assert stats["by_endpoint"]["email/send"]["rate_limited"] == 3
    assert len(sandbox.messages()) == 5

    time.sleep(1.05)
    ok(api.post("/email/send", json=email()))


def test_the_limit_is_shared_by_all_clients_and_endpoints(sandbox: Sandbox) -> None:
    sandbox.configure(rate="4/10s")
    codes = []
    for i in range(6):
        client_key = {"X-Smtp2go-Api-Key": sandbox.api_key}
        path = "/email/send" if i % 2 else "/stats/email_cycle"
        with httpx.Client(base_url=sandbox.base_url, headers=client_key) as client:
            codes.append(client.post(path, json=email()).status_code)
    assert codes == [200, 200, 200, 200, 429, 429]


def test_without_a_limit_no_rate_headers_are_sent(api: httpx.Client) -> None:
    response = api.post("/email/send", json=email())
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response.headers


def test_activity_search_has_its_own_limit(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(activity_rate="2/m")
    codes = [api.post("/activity/search", json={}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    ok(api.post("/email/send", json=email()))  # other endpoints are not affected


def test_storm_answers_429_to_everything_for_a_while(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(storm_seconds=1)
    refused = [api.post(path, json=email()) for path in ("/email/send", "/stats/email_cycle")]
    assert [r.status_code for r in refused] == [429, 429]
    assert refused[0].headers["Retry-After"] == "1"
    assert sandbox.messages() == []
    time.sleep(1.05)
    ok(api.post("/email/send", json=email()))


def test_429_without_retry_after_when_told(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(storm_seconds=30, retry_after=False)
    response = api.post("/email/send", json=email())
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_fail_next_on_one_endpoint(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(fail_next=2, fail_endpoints=["email/send"])
    ok(api.post("/stats/email_cycle", json={}))  # not a listed endpoint: unaffected
    first, second = (api.post("/email/send", json=email()) for _ in range(2))
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.json()["data"]["error_code"] == "E_ApiResponseCodes.API_EXCEPTION"
    ok(api.post("/email/send", json=email()))
    assert len(sandbox.messages()) == 1
    stats = sandbox.stats()
    assert stats["injected_failures"] == 2
    assert stats["by_endpoint"]["email/send"]["injected_failures"] == 2


@pytest.mark.parametrize(
    ("status", "error_code"),
    [
        (500, "API_EXCEPTION"),
        (400, "ENDPOINT_PERMISSION_DENIED"),
        (402, "REQUEST_FAILED"),
        (403, "ENDPOINT_PERMISSION_DENIED"),
        (429, "RATE_LIMIT_EXCEEDED"),
    ],
)
def test_fail_next_with_a_chosen_status(
    api: httpx.Client, sandbox: Sandbox, status: int, error_code: str
) -> None:
    sandbox.configure(fail_next=1, fail_status=status)
    response = api.post("/email/send", json=email())
    assert response.status_code == status
    assert response.json()["data"]["error_code"] == f"E_ApiResponseCodes.{error_code}"
    assert ("Retry-After" in response.headers) == (status == 429)
    assert sandbox.messages() == []


def test_fail_rate_answers_500_502_503_at_random(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(fail_rate=0.5, seed=7)
    codes = [api.post("/email/send", json=email()).status_code for _ in range(120)]
    failed = [c for c in codes if c != 200]
    assert set(failed) <= {500, 502, 503}
    assert len(set(failed)) == 3
    assert 30 <= len(failed) <= 90
    assert len(sandbox.messages()) == codes.count(200)
    assert sandbox.stats()["injected_failures"] == len(failed)


def test_bad_gateway_is_not_json(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(fail_next=1, fail_status=502)
    response = api.post("/email/send", json=email())
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


def test_hang_next_records_the_send_but_answers_too_late(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.configure(hang_next=1, hang_seconds=20)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        api.post("/email/send", json=email(subject="ambiguous"), timeout=0.5)
    assert time.monotonic() - started < 5
    [message] = sandbox.messages()
    assert message["subject"] == "ambiguous"
    assert sandbox.stats()["hung"] == 1
    ok(api.post("/email/send", json=email()))  # only the next one hangs


def test_latency_delays_every_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=150)
    started = time.monotonic()
    ok(api.post("/email/send", json=email()))
    assert time.monotonic() - started >= 0.15


def test_a_patient_client_gets_the_held_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(hang_next=1, hang_seconds=0.4)
    started = time.monotonic()
    data = ok(api.post("/email/send", json=email(), timeout=5))
    assert time.monotonic() - started >= 0.4
    assert sandbox.messages()[0]["email_id"] == data["email_id"]


def test_reset_releases_held_answers(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(hang_next=1, hang_seconds=20)
    answers: list[int] = []
    waiter = threading.Thread(
        target=lambda: answers.append(api.post("/email/send", json=email(), timeout=10).status_code)
    )
    waiter.start()
    wait_until(lambda: sandbox.stats()["hung"] == 1, timeout=5, what="the held send")
    sandbox.reset()
    waiter.join(5)
    assert answers == [200]
