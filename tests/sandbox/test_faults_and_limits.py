"""Injected failures, latency and answers held past a client's timeout.

Limits, timeouts and 429 storms are pinned in ``test_limits.py``.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import email, ok

pytestmark = pytest.mark.integration


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
    ],
)
def test_fail_next_with_a_chosen_status(
    api: httpx.Client, sandbox: Sandbox, status: int, error_code: str
) -> None:
    sandbox.configure(fail_next=1, fail_status=status)
    response = api.post("/email/send", json=email())
    assert response.status_code == status
    assert response.json()["data"]["error_code"] == f"E_ApiResponseCodes.{error_code}"
    assert "Retry-After" not in response.headers  # hints only with rate_headers
    assert sandbox.messages() == []


def test_fail_next_429_is_the_documented_bare_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(fail_next=1, fail_status=429)
    response = api.post("/email/send", json=email())
    assert (response.status_code, response.content) == (429, b"")
    assert "Retry-After" not in response.headers
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


def test_injected_429_has_retry_after_only_with_rate_headers(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.configure(fail_next=1, fail_status=429, rate_headers=True)
    response = api.post("/email/send", json=email())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"


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
