"""Limits as the real service has them: a timeout per client IP, answered 429, no hints.

Source: https://developers.smtp2go.com/docs/rate-limiting (2025-06-08): "In the event that
your interaction with the API results in what we deem to be too many requests or error
responses, the IP address from which the requests originated will be timed out for an
indeterminate amount of time, no less than 1 minute. You will receive a 429 Too Many
Requests response code during this time." and "The /activity/search endpoint has a rate
limit of 60 per minute." Neither that page nor the OpenAPI 3.0.4 names a ``Retry-After``
or ``X-RateLimit-*`` header; the old Swagger 2.0 description (``smtp2go-oss/apidocs``)
did, which is what ``rate_headers`` brings back.
"""

from __future__ import annotations

import time

import httpx
import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.sandbox.conftest import email, ok

pytestmark = pytest.mark.integration

HINTS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def no_hints(response: httpx.Response) -> bool:
    return not any(name in response.headers for name in HINTS)


def test_going_over_the_rate_times_the_client_out(api: httpx.Client, sandbox: Sandbox) -> None:
    """Over the limit: the IP is timed out; every request 429, with no hint headers."""
    sandbox.configure(rate="5/s", penalty=1)
    responses = [api.post("/email/send", json=email()) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert all(no_hints(r) for r in responses)
    # As documented: a bare 429, no error code or body (OpenAPI, its Postman collection)
    refused = responses[-1]
    assert (refused.content, refused.headers["content-type"].split(";")[0]) == (b"", "text/plain")
    # Every endpoint is refused during the timeout, not only the one that went over.
    also = api.post("/stats/email_cycle", json={})
    assert (also.status_code, no_hints(also)) == (429, True)
    stats = sandbox.stats()
    assert stats["timeouts"] == 1
    [current] = stats["timed_out"]
    assert (current["client"], current["scope"], current["reason"]) == (
        "127.0.0.1",
        "api",
        "rate",
    )
    assert current["until"] == stats["timeout_until"]
    assert 0.5 < stats["timeout_until"] - time.time() <= 1.0
    assert len(sandbox.messages()) == 5


def test_requests_during_a_timeout_do_not_extend_it(api: httpx.Client, sandbox: Sandbox) -> None:
    """The timeout runs from the request that went over (an assumption: the real length is
    "indeterminate, no less than 1 minute"); knocking on the door does not prolong it."""
    sandbox.configure(rate="2/s", penalty=1)
    for _ in range(3):
        api.post("/email/send", json=email())
    until = sandbox.stats()["timeout_until"]
    knocks = 0
    while api.post("/email/send", json=email()).status_code == 429:
        knocks += 1
        assert time.time() < until + 0.5, "the timeout outlasted its penalty"
        time.sleep(0.02)
    assert time.time() >= until - 0.05
    assert knocks > 5
    stats = sandbox.stats()
    assert stats["timeouts"] == 1
    assert stats["rate_limited"] == 1 + knocks


def test_the_default_penalty_is_a_minute(api: httpx.Client, sandbox: Sandbox) -> None:
    """ "no less than 1 minute": the default ``penalty`` is 60 s."""
    assert httpx.get(f"{sandbox.url}/_sandbox/config").json()["penalty"] == 60
    sandbox.configure(rate="1/m")
    ok(api.post("/email/send", json=email()))
    assert api.post("/email/send", json=email()).status_code == 429
    assert 58 < sandbox.stats()["timeout_until"] - time.time() <= 60


def test_penalty_zero_refuses_only_the_requests_over_the_limit(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """``penalty: 0``: a plain sliding window (the sandbox's behaviour before timeouts)."""
    sandbox.configure(rate="2/0.5s", penalty=0)
    codes = [api.post("/email/send", json=email()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    wait_until(
        lambda: api.post("/email/send", json=email()).status_code == 200,
        timeout=5,
        what="the window to have room",
    )
    assert sandbox.stats()["timeouts"] == 0


def test_too_many_error_answers_time_the_client_out(api: httpx.Client, sandbox: Sandbox) -> None:
    """ "too many requests or error responses": over ``error_limit`` 4xx answers (429s not
    counted), the IP is timed out too."""
    sandbox.configure(error_limit="3/m", penalty=1)
    bad = email(to=[])
    assert [api.post("/email/send", json=bad).status_code for _ in range(4)] == [400] * 4
    refused = api.post("/email/send", json=email())
    assert (refused.status_code, no_hints(refused)) == (429, True)
    [current] = sandbox.stats()["timed_out"]
    assert current["reason"] == "errors"
    wait_until(
        lambda: api.post("/email/send", json=email()).status_code == 200,
        timeout=5,
        what="the timeout to end",
    )


def test_errors_time_a_client_out_by_default_at_an_assumed_threshold(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """The rate page: too many "error responses" time the IP out; no threshold is
    published, so 20 a minute is assumed (``DEFAULT_ERROR_LIMIT``)."""
    bad = email(to=[])
    # The error that goes over is still answered; the IP is timed out from the next on.
    assert [api.post("/email/send", json=bad).status_code for _ in range(21)] == [400] * 21
    assert api.post("/email/send", json=email()).status_code == 429
    assert sandbox.stats()["timeouts"] == 1


def test_errors_never_time_a_client_out_with_no_limit(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(error_limit=None)
    for _ in range(30):
        assert api.post("/email/send", json=email(to=[])).status_code == 400
    ok(api.post("/email/send", json=email()))
    assert sandbox.stats()["timeouts"] == 0


def test_rate_headers_bring_back_the_old_hints(api: httpx.Client, sandbox: Sandbox) -> None:
    """The old Swagger 2.0 (``smtp2go-oss/apidocs``): "X-RateLimit-Limit ... Remaining ...
    Reset"; ``Retry-After`` on a 429 is the time left of the timeout."""
    sandbox.configure(rate="5/s", penalty=2, rate_headers=True)
    responses = [api.post("/email/send", json=email()) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"5"}
    refused = responses[-1]
    assert refused.headers["Retry-After"] == "2"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    during = api.post("/email/send", json=email())
    assert during.headers["Retry-After"] in ("1", "2")


def test_without_a_rate_no_limit_headers_even_when_asked(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.configure(rate_headers=True)
    assert no_hints(api.post("/email/send", json=email()))


def test_the_limit_is_shared_by_all_clients_and_endpoints(sandbox: Sandbox) -> None:
    """The account's limit counts every request, whatever the connection or endpoint."""
    sandbox.configure(rate="4/10s", penalty=0)
    codes = []
    for i in range(6):
        client_key = {"X-Smtp2go-Api-Key": sandbox.api_key}
        path = "/email/send" if i % 2 else "/stats/email_cycle"
        with httpx.Client(base_url=sandbox.base_url, headers=client_key) as client:
            codes.append(client.post(path, json=email()).status_code)
    assert codes == [200, 200, 200, 200, 429, 429]


def test_a_timeout_is_the_ip_s_own(sandbox: Sandbox) -> None:
    """ "the IP address from which the requests originated will be timed out"."""
    headers = {"X-Smtp2go-Api-Key": sandbox.api_key}
    sandbox.configure(rate="2/0.5s", penalty=30)
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        httpx.Client(base_url=sandbox.base_url, headers=headers) as one,
        httpx.Client(base_url=sandbox.base_url, headers=headers, transport=transport) as two,
    ):
        assert [one.post("/email/send", json=email()).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        time.sleep(0.55)  # the 0.5 s window empties; the first client's timeout runs on
        assert two.post("/email/send", json=email()).status_code == 200
        assert one.post("/email/send", json=email()).status_code == 429
    assert [t["client"] for t in sandbox.stats()["timed_out"]] == ["127.0.0.1"]


def test_activity_search_has_its_own_limit_and_timeout(api: httpx.Client, sandbox: Sandbox) -> None:
    """OpenAPI 3.0.4 / rate-limiting page: ``/activity/search`` "60 requests per minute".
    Going over it times the client out of that endpoint only (an assumption)."""
    sandbox.configure(activity_rate="2/m", penalty=1)
    codes = [api.post("/activity/search", json={}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    ok(api.post("/email/send", json=email()))  # other endpoints are not affected
    [current] = sandbox.stats()["timed_out"]
    assert (current["scope"], current["reason"]) == ("activity/search", "activity_rate")


def test_storm_answers_429_to_everything_for_a_while(api: httpx.Client, sandbox: Sandbox) -> None:
    """A fault, not the real service: every request 429 for ``storm_seconds``."""
    sandbox.configure(storm_seconds=1)
    refused = [api.post(path, json=email()) for path in ("/email/send", "/stats/email_cycle")]
    assert [r.status_code for r in refused] == [429, 429]
    assert all(no_hints(r) for r in refused)
    assert sandbox.messages() == []
    wait_until(
        lambda: api.post("/email/send", json=email()).status_code == 200,
        timeout=5,
        what="the storm to end",
    )


def test_storm_answers_follow_rate_headers(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(storm_seconds=30, rate_headers=True)
    response = api.post("/email/send", json=email())
    assert response.status_code == 429
    assert 29 <= int(response.headers["Retry-After"]) <= 30


def test_jitter_comes_before_the_count_and_latency_after(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """A message's ``time`` is when it was counted against the limit: after the random
    ``latency_jitter_ms`` on the way in, before ``latency_ms`` (so a benchmark can find the
    most sends in any 1 s window from ``/_sandbox/messages``)."""
    sandbox.configure(latency_ms=200)
    started = time.time()
    ok(api.post("/email/send", json=email()))
    answered = time.time()
    [message] = sandbox.messages()
    assert started <= message["time"] < started + 0.1
    assert answered - started >= 0.2

    sandbox.reset()
    sandbox.configure(latency_jitter_ms=150, seed=11)
    assert httpx.get(f"{sandbox.url}/_sandbox/config").json()["latency_jitter_ms"] == 150
    delays = []
    for _ in range(8):
        sent_at = time.time()
        ok(api.post("/email/send", json=email()))
        delays.append(sandbox.messages()[-1]["time"] - sent_at)
    assert all(0 <= d < 0.25 for d in delays), delays
    assert max(delays) > 0.03, delays
