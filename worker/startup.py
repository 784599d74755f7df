"""A worker's start-up: refuse to run without a usable API, then get ready to send.

Connected to Celery's start-up signals, so only a worker does any of it (producers,
beat and the command line import the same modules without needing a key):

- a worker that could not send (no key, a key of the wrong shape, an unsafe base URL)
  exits with the reason before it takes a task;
- the work-arounds of :mod:`outbox.worker.compat` are put in place;
- each process that runs tasks pays its start-up costs first (``Runtime.warm_up``);
- with ``OUTBOX_METRICS_PORT`` set, the main process serves Prometheus metrics
  (:mod:`outbox.worker.metrics.serve`), or the worker exits saying why it cannot;
- every log line a worker writes is scrubbed of the key and the webhook secret, and
  httpx's per-request lines are kept to debug level.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from outbox.core.errors import ConfigurationError
from outbox.worker import compat
from outbox.worker.logs import install_secret_filter
from outbox.worker.metrics import serve
from outbox.worker.runtime import get_runtime

__all__ = ["WorkerConfigError", "check_can_send", "serve_metrics"]

logger = logging.getLogger(__name__)


class WorkerConfigError(SystemExit):
    """Ends the worker process with the reason as its message."""


def check_can_send() -> None:
    settings = get_runtime().settings
    try:
        settings.require_api_key()
        settings.base_url  # noqa: B018 - validates the URL
    except ConfigurationError as exc:
        raise WorkerConfigError(f"outbox worker cannot start: {exc}") from None


def serve_metrics(*, prefork: bool) -> None:
    """Serve this worker's metrics when ``OUTBOX_METRICS_PORT`` is set; exit if it cannot.

    Before the pool starts: a prefork pool's children must inherit the counting mode."""
    rt = get_runtime()
    if rt.settings.metrics_port is None:
        return
    from outbox.worker.celery_app import app

    try:
        rt.metrics = serve.start(rt, prefork=prefork, app=app)
    except ConfigurationError as exc:
        raise WorkerConfigError(f"outbox worker cannot start: {exc}") from None


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    check_can_send()
    compat.install()
    prefork = "prefork" in str(getattr(sender, "pool_cls", ""))
    serve_metrics(prefork=prefork)
    if not prefork:
        # Tasks run in this process (threads, solo): warm it. A prefork parent must
        # not build sockets its children would inherit; each child warms itself.
        get_runtime().warm_up(int(getattr(sender, "concurrency", 1) or 1))


@worker_process_init.connect
def _on_child_init(**_: Any) -> None:
    compat.install()
    rt = get_runtime()
    rt.metrics = serve.for_child() or rt.metrics
    rt.warm_up(1)


# The three below do nothing unless this worker serves metrics.


@worker_process_shutdown.connect
def _on_child_exit(pid: int | None = None, **_: Any) -> None:
    if pid is not None:
        serve.child_exited(pid)


@worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    serve.announce()
    _first_reads()


def _first_reads() -> None:
    """Once per fleet start (a minute), read what the key may call and then the monthly
    quota, rather than wait a whole beat interval for them: tasks, so each request takes
    its slot of the shared limit like any other."""
    from outbox.core.queues import Queue, TaskName
    from outbox.worker.publish import Task, publish

    try:
        rt = get_runtime()
        if rt.settings.account_reads_at_start and rt.store.account.take_turn("first-reads", 60):
            publish(
                [
                    Task(TaskName.CHECK_PERMISSIONS, [], Queue.EMAIL),
                    Task(TaskName.SYNC_QUOTA, [], Queue.EMAIL),
                ]
            )
    except Exception:  # the worker runs all the same; beat's schedule tries again
        logger.warning("could not ask for the key's permissions and quota", exc_info=True)


@worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    serve.stop()


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
