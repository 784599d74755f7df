"""Property-test fixtures: fakeredis and the in-memory broker (from the unit tests), and
an in-process delivery path to the real sandbox for the examples that are accepted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from outbox.core.settings import Settings
from outbox.worker.runtime import Runtime, set_runtime
from tests.conftest import TEST_API_KEY, Sandbox
from tests.unit.conftest import fake_redis, memory_broker  # noqa: F401 - shared fixtures

TEMPLATE_ID = "outbox-prop-1"


@pytest.fixture
def sandbox_runtime(fake_redis: Any, sandbox: Sandbox) -> Iterator[Runtime]:  # noqa: F811
    """Records on fakeredis; tasks run in this process and send to the real sandbox."""
    settings = Settings(
        SMTP2GO_API_KEY=TEST_API_KEY,
        SMTP2GO_BASE_URL=sandbox.base_url,
        SMTP2GO_TIMEOUT=10,
        OUTBOX_RATE_LIMIT="100000/s",
    )
    rt = Runtime.from_settings(settings, redis_client=fake_redis)
    set_runtime(rt)
    response = httpx.post(
        f"{sandbox.base_url}/template/add",
        headers={"X-Smtp2go-Api-Key": TEST_API_KEY},
        json={
            "id": TEMPLATE_ID,
            "template_name": "property tests",
            "subject": "Hello {{ name }}",
            "html_body": "<p>Hi {{ name }}</p>",
            "text_body": "Hi {{ name }}",
        },
        timeout=10,
    )
    response.raise_for_status()
    yield rt
    set_runtime(None)
    rt.close()
