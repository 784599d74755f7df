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
