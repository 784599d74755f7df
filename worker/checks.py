"""Refuse to start a worker that could not send: no API key, or an unsafe base URL.

Checked when a worker process starts, not at import (producers, beat and the command
line import the same modules without needing the key), so a misconfigured worker exits
with a clear message instead of taking tasks it can only fail.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init

from worker.runtime import get_runtime
from worker.settings import MissingAPIKeyError

__all__ = ["check_can_send"]


class WorkerConfigError(SystemExit):
    """Ends the worker process with the reason as its message."""


def check_can_send() -> None:
    settings = get_runtime().settings
    try:
        settings.require_api_key()
        settings.base_url  # noqa: B018 - validates the URL
    except (MissingAPIKeyError, ValueError) as exc:
        raise WorkerConfigError(f"outbox worker cannot start: {exc}") from None


@worker_init.connect
def _on_worker_init(**_: Any) -> None:
    check_can_send()
