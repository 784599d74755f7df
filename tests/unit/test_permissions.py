"""What the key may call: read once, or learned from the first refusal, and never asked
again within the hour. A key SMTP2GO creates with the default permissions may call
``/email/send`` only (OpenAPI ``api_keys/add``; changelog 2025-04-03)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from outbox.worker import beat, permissions
from outbox.worker.runtime import Runtime

DENIED = {
    "request_id": "r",
    "data": {
        "error": "You do not have permission to access this API endpoint",
        "error_code": "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED",
    },
}


class Api:
    """An SMTP2GO whose key may call only ``allowed``; counts what it was asked."""

    def __init__(self, allowed: set[str], *, may_read_permissions: bool = True) -> None:
        self.allowed = allowed
        self.may_read_permissions = may_read_permissions
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v3/")
        self.calls.append(path)
        if path == "api_keys/permissions" and self.may_read_permissions:
            body = {"endpoints": sorted(f"/{p}" for p in self.allowed)}
            return httpx.Response(200, json={"request_id": "r", "data": body})
        if path not in self.allowed:
            return httpx.Response(400, json=DENIED)
        data = {"cycle_used": 1, "cycle_remaining": 9, "cycle_max": 10}
        return httpx.Response(200, json={"request_id": "r", "data": data})


@pytest.fixture
def api(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(found: Api) -> Api:
        from outbox.core.smtp2go.client import SMTP2GOClient

        client = SMTP2GOClient(
            "http://127.0.0.1:9/v3", "api-" + "0" * 32, transport=httpx.MockTransport(found)
        )
        monkeypatch.setattr(runtime, "_client", client)
        return found

    return install


def test_a_default_key_turns_the_features_off_once_and_says_which(
    runtime: Runtime, api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    found = api(Api({"email/send"}))
    with caplog.at_level(logging.WARNING, logger="outbox.worker.permissions"):
        off = permissions.learn(runtime)
    assert off is not None
    assert set(off) == set(permissions.FEATURES)
    (line,) = caplog.records
    assert "may call only email/send" in line.getMessage()
    assert "needs /stats/email_cycle" in line.getMessage()
    # Every beat job of the hour asks nothing of the API: no stream of error answers.
    for _ in range(5):
        assert beat.sync_quota() is None
        assert beat.sync_suppressions() is None
        assert beat.stats_snapshot() is None
    assert found.calls == ["api_keys/permissions"]


def test_without_leave_to_read_them_the_first_refusal_teaches_the_fleet(
    runtime: Runtime, api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    found = api(Api({"email/send"}, may_read_permissions=False))
    assert permissions.learn(runtime) is None
    with caplog.at_level(logging.WARNING, logger="outbox.worker.permissions"):
        for _ in range(3):
            assert beat.sync_quota() is None
    assert found.calls == ["api_keys/permissions", "stats/email_cycle"]
    (line,) = caplog.records
    assert "may not call stats/email_cycle: the monthly quota" in line.getMessage()
    assert runtime.store.account.denials(runtime.store.now()).keys() == {"stats/email_cycle"}


def test_a_permission_granted_later_is_used_after_the_recheck(runtime: Runtime, api: Any) -> None:
    found = api(Api({"email/send"}))
    permissions.learn(runtime)
    assert beat.sync_quota() is None
    found.allowed.add("stats/email_cycle")
    assert permissions.learn(runtime) == [
        p for p in permissions.FEATURES if p != "stats/email_cycle"
    ]
    quota = beat.sync_quota()
    assert quota is not None
    assert quota["cycle_remaining"] == 9
