"""A key's permissions, as SMTP2GO keeps them: a key created with the default
permissions may call ``/email/send`` only (OpenAPI ``api_keys/add``; developer changelog
2025-04-03), other endpoints answer ``ENDPOINT_PERMISSION_DENIED`` (usually HTTP 400,
SMTP2GO-API.md); ``api_keys/permissions`` says what the key may call. The key may also
come as ``Authorization: Bearer`` (developer changelog 2026-09)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from outbox.sandbox.config import SandboxConfig
from tests.conftest import Sandbox
from tests.sandbox.conftest import email, ok

DENIED = "E_ApiResponseCodes.ENDPOINT_PERMISSION_DENIED"


def _config(sandbox: Sandbox, **config: Any) -> dict[str, Any]:
    """Set knobs; the configuration the sandbox answers with."""
    answer = httpx.post(f"{sandbox.url}/_sandbox/config", json=config, timeout=5)
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()
    return dict(data.get("config", data))


def test_a_key_with_the_default_permissions_may_only_send(
    sandbox: Sandbox, api: httpx.Client
) -> None:
    sandbox.configure(key_permissions=["/email/send"])
    assert ok(api.post("/email/send", json=email()))["succeeded"] == 1
    for path in ("/stats/email_cycle", "/activity/search", "/email/mime", "/suppression/view"):
        answer = api.post(path, json={})
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["data"]["error_code"] == DENIED
    assert ok(api.post("/api_keys/permissions", json={}))["endpoints"] == ["/email/send"]
    assert _config(sandbox, key_permissions=None)["key_permissions"] is None
    assert "/stats/email_cycle" in ok(api.post("/api_keys/permissions", json={}))["endpoints"]
    assert api.post("/stats/email_cycle", json={}).status_code == 200


def test_permissions_take_either_spelling_and_refuse_unknown_endpoints(
    sandbox: Sandbox,
) -> None:
    shown = _config(sandbox, key_permissions="email/send,/email/mime")["key_permissions"]
    assert shown == ["/email/mime", "/email/send"]
    answer = httpx.post(f"{sandbox.url}/_sandbox/config", json={"key_permissions": ["/nope"]})
    assert answer.status_code == 400
    assert "key_permissions" in answer.text
    with pytest.raises(ValueError, match="key_permissions"):
        SandboxConfig(key_permissions=["email/sned"])


def test_the_key_as_a_bearer_token_is_accepted(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    answer = httpx.post(f"{sandbox.base_url}/email/send", json=email(), headers=headers)
    assert ok(answer)["succeeded"] == 1
    wrong = httpx.post(
        f"{sandbox.base_url}/email/send", json=email(), headers={"Authorization": "Bearer x"}
    )
    assert wrong.status_code == 401


def test_a_keys_own_rate_limit_answers_429_without_timing_the_ip_out(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """OpenAPI ``api_keys/add``: ``custom_ratelimit_value`` emails per
    ``custom_ratelimit_period``; over it, "API key ratelimit exceeded" (rate-limiting
    page, as api-evangelist/smtp2go summarises it). The status and shape are assumed."""
    sandbox.configure(key_rate="3/m")
    for _ in range(3):
        ok(api.post("/email/send", json=email()))
    over = api.post("/email/send", json=email())
    assert over.status_code == 429
    assert over.json()["data"]["error"] == "API key ratelimit exceeded"
    ok(api.post("/stats/email_cycle", json={}))  # other endpoints, and the IP, go on
    assert sandbox.stats()["timeouts"] == 0
    assert len(sandbox.messages()) == 3


def test_a_sandbox_key_is_accepted_and_delivers_to_nobody(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """``status: sandbox`` (OpenAPI ``api_keys/add``); a ``reject`` for "a sandboxed
    key" (Webhooks page). That the answer is an ordinary acceptance is assumed."""
    sandbox.configure(key_status="sandbox")
    data = ok(api.post("/email/send", json=email(to=["a@example.org", "b@example.org"])))
    assert (data["succeeded"], data["failed"]) == (1, 0)
    [message] = sandbox.messages()
    assert message["recipients"] == []
    assert sorted(message["rejected"]) == ["a@example.org", "b@example.org"]


def test_a_blocked_key_is_refused_in_the_answer(api: httpx.Client, sandbox: Sandbox) -> None:
    """``status: blocked`` (OpenAPI ``api_keys/add``); the answer is assumed to be the
    captured failure's shape."""
    sandbox.configure(key_status="blocked")
    data = ok(api.post("/email/send", json=email()))
    assert (data["succeeded"], data["failed"], data["email_id"]) == (0, 1, "")
    assert "blocked" in data["failures"][0]
    assert sandbox.messages() == []
