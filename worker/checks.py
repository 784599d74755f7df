"""Worker start-up: refuse to run without a usable API, warm up, redact secrets from logs.

A worker that could not send (no API key, or an unsafe base URL) refuses to start; one
that can pays its start-up costs (``Runtime.warm_up``) before taking tasks.

Checked when a worker process starts, not at import (producers, beat and the command
line import the same modules without needing the key), so a misconfigured worker exits
with a clear message instead of taking tasks it can only fail.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_process_init,
)

from outbox.worker.logs import install_secret_filter
from outbox.worker.runtime import get_runtime
from outbox.worker.settings import MissingAPIKeyError

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
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    check_can_send()
    pool = str(getattr(sender, "pool_cls", ""))
    if "prefork" not in pool:
        # Tasks run in this process (threads, solo): warm it. A prefork parent must
        # not build sockets its children would inherit; each child warms itself.
        get_runtime().warm_up(int(getattr(sender, "concurrency", 1) or 1))


@worker_process_init.connect
def _on_child_init(**_: Any) -> None:
    get_runtime().warm_up(1)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(**_: Any) -> None:
    """Scrub the API key and the webhook secret from every log line a worker writes."""
    settings = get_runtime().settings
    secrets = [
        s.get_secret_value() for s in (settings.smtp2go_api_key, settings.webhook_secret) if s
    ]
    install_secret_filter(*secrets)


@after_setup_logger.connect
def _quiet_http_logs(loglevel: int | None = None, **_: Any) -> None:
    """One line per request from httpx repeats Celery's own task lines (and costs CPU on
    every send); below debug level only its warnings are kept."""
    if loglevel is None or loglevel > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
