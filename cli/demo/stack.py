"""The demo's infrastructure in one process: sandbox, records, broker and a worker.

``outbox demo`` must run on a laptop with nothing installed beside the package, so by
default everything lives here, in threads of one process:

* the SMTP2GO sandbox (``sandbox.serve_in_thread``) on a free loopback port, with a
  random API key that is never printed;
* records and the rate limiter on fakeredis: one ``FakeServer`` with Lua (lupa), so the
  very same limiter and record scripts run as on a real Redis;
* kombu's ``memory://`` broker, shared by every thread of the process;
* a Celery worker (``WorkController``, thread pool) running the real tasks with the
  real task settings (acks late, JSON only, prefetch 1, the three queues), and the
  parked-task releaser through the same ``worker_ready`` signal a ``celery worker`` sends.

With ``--redis URL`` the records and the broker are a real Redis instead: the URL's
database is the broker, the next one holds the records (``redis://host:6379/13`` ->
broker on 13, records on 14). The demo needs those databases to itself; at the end it
removes what it wrote there that would outlast its records' hour (:mod:`.tidy`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from outbox.cli.demo.tidy import Tidy
from outbox.cli.output import redacted_url
from outbox.core.settings import Settings
from outbox.sandbox import RunningSandbox, SandboxConfig, serve_in_thread
from outbox.worker.runtime import Runtime, set_runtime

__all__ = [
    "QUEUES",
    "DemoStack",
    "EmbeddedWorker",
    "StackError",
    "redacted_url",
    "split_redis_url",
]

logger = logging.getLogger(__name__)

#: Every queue the demo's worker consumes, as ``celery worker -Q email,sms,bulk``.
QUEUES = ("email", "sms", "bulk")

#: kombu's in-process transport (the host only silences kombu's "no hostname" warning).
MEMORY_BROKER = "memory://localhost/"

#: How often the memory transport looks at an empty queue (kombu's default is 1 s,
#: which would add up to a second to every retry).
MEMORY_POLL_SECONDS = 0.02


class StackError(RuntimeError):
    """The demo could not start; ``exit_code`` says why (3: Redis unreachable)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def split_redis_url(url: str) -> tuple[str, str]:
    """``(broker URL, records URL)``: the URL's database and the one after it."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        raise StackError(f"--redis expects redis://host:port/db, not {redacted_url(url)!r}", 2)
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise StackError(f"--redis: database must be a number, not {path!r}", 2)
    db = int(path or 0)
    broker = urlunsplit(parts._replace(path=f"/{db}"))
    records = urlunsplit(parts._replace(path=f"/{db + 1}"))
    return broker, records


@dataclass
class EmbeddedWorker:
    """A Celery ``WorkController`` in a daemon thread of this process.

    Not ``celery.apps.worker.Worker`` (what ``celery worker`` runs): that one prints a
    banner, redirects stdout and takes over logging, which would fight the progress
    display. The controller is the same; ``worker_ready`` is sent here as that class
    sends it, so the parked-task releaser starts as in a real worker.
    """

    app: Any
    concurrency: int = 50
    queues: tuple[str, ...] = QUEUES
    hostname: str = field(
        default_factory=lambda: f"outbox-demo-{os.getpid()}@{socket.gethostname()}"
    )
    _controller: Any = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def _on_ready(self, consumer: Any) -> None:
        from celery.signals import worker_ready

        worker_ready.send(sender=consumer)
        self._ready.set()

    def start(self, timeout: float = 20.0) -> None:
        from celery.worker import WorkController

        # As ``celery worker`` does: the pool's threads have no current app of their
        # own, and ``task.retry`` would otherwise publish through Celery's default app
        # (configured from the environment, not this one).
        self.app.set_current()
        self.app.set_default()
        self._controller = WorkController(
            app=self.app,
            hostname=self.hostname,
            pool="threads",
            concurrency=self.concurrency,
            queues=list(self.queues),
            loglevel="WARNING",
            ready_callback=self._on_ready,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self._thread = threading.Thread(
            target=self._controller.start, name="outbox-demo-worker", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StackError("the embedded Celery worker did not start")

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown through the worker's own remote-control command.

        The consumer loop only looks at the shutdown flag between two polls of the
        broker (every 2 s when idle); a ``shutdown`` control message wakes it at once.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        # "Got shutdown from remote" is news in a real worker's log, not here.
        logging.getLogger("celery.worker.control").setLevel(logging.ERROR)
        try:
            self.app.control.shutdown(destination=[self.hostname])
        except Exception:  # the broker is gone: fall back to the flag the loop polls
            logger.debug("remote shutdown failed; setting the flag", exc_info=True)
            from celery.worker import state

            state.should_stop = 0
        thread.join(timeout)
        if thread.is_alive() and self._controller is not None:
            self._controller.terminate()
            thread.join(2.0)


#: Environment variables Celery prefers to any configured broker URL.
_BROKER_ENV = ("CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL")


def _switch_broker(app: Any, url: str) -> dict[str, Any]:
    """Point the app at ``url`` before anything connects; the old values to restore.

    Celery's ``conf.broker_url`` answers ``CELERY_BROKER_URL`` from the environment
    before the configured value, so the read and write URLs (which win over it) are set
    too; their own environment variables are put aside for the run.
    """
    saved: dict[str, Any] = {
        "broker_url": app.conf.get("broker_url"),
        "broker_read_url": app.conf.get("broker_read_url"),
        "broker_write_url": app.conf.get("broker_write_url"),
        "broker_transport_options": dict(app.conf.broker_transport_options or {}),
        "worker_send_task_events": app.conf.worker_send_task_events,
        "task_send_sent_event": app.conf.task_send_sent_event,
    }
    env = {name: os.environ.pop(name) for name in _BROKER_ENV if name in os.environ}
    app.conf.broker_url = app.conf.broker_read_url = app.conf.broker_write_url = url
    if url.startswith("memory://"):
        # No Flower can watch an in-process broker, and nothing else reads the events.
        app.conf.broker_transport_options = {"polling_interval": MEMORY_POLL_SECONDS}
        app.conf.worker_send_task_events = False
        app.conf.task_send_sent_event = False
    app._pool = None
    app.amqp._producer_pool = None
    return {"conf": saved, "env": env}


def _restore_broker(app: Any, saved: dict[str, Any]) -> None:
    from kombu import pools

    with contextlib.suppress(Exception):
        if app._pool is not None:
            app._pool.force_close_all()
    # kombu keeps producer pools per connection in a registry of its own; the closed
    # ones must not be handed to the next stack of this process (a test's next one).
    pools.reset()  # type: ignore[no-untyped-call]
    for name, value in saved["conf"].items():
        setattr(app.conf, name, value)
    os.environ.update(saved["env"])
    app._pool = None
    app.amqp._producer_pool = None


@dataclass
class DemoStack:
    """Starts and stops everything ``outbox demo`` sends through."""

    sandbox_config: SandboxConfig
    settings_overrides: dict[str, str]
    concurrency: int = 50
    redis_url: str | None = None

    sandbox: RunningSandbox | None = None
    runtime: Runtime | None = None
    worker: EmbeddedWorker | None = None
    broker_url: str = MEMORY_BROKER
    records_url: str = "fakeredis (in process)"
    #: With ``--redis``: keys removed at the end (see :mod:`.tidy`).
    keys_removed: int | None = None
    _tidy: Tidy | None = None
    _saved_conf: dict[str, Any] | None = None
    _api_key: str = field(default_factory=lambda: "api-" + secrets.token_hex(16), repr=False)

    @property
    def mode(self) -> str:
        return "redis" if self.redis_url else "embedded"

    @property
    def api_key(self) -> str:
        """The sandbox's key: for the log filter, never for output."""
        return self._api_key

    def control(self) -> httpx.Client:
        """A client for the sandbox's ``/_sandbox`` control endpoints."""
        if self.sandbox is None:
            raise StackError("the sandbox is not running")
        return httpx.Client(base_url=self.sandbox.url, timeout=10.0)

    def start(self) -> Runtime:
        # Registers the tasks (and the relay's signal handlers) before the worker and
        # the producers need them.
        import outbox.worker.relay
        import outbox.worker.tasks  # noqa: F401
        from outbox.worker.celery_app import app

        redis_client: Any
        if self.redis_url:
            self.broker_url, self.records_url = split_redis_url(self.redis_url)
            redis_client = self._real_redis()
            retention = int(self.settings_overrides.get("OUTBOX_RETENTION", 7 * 86400))
            self._tidy = Tidy([self.broker_url, self.records_url], keep_for=retention)
            self._tidy.note()
        else:
            import fakeredis

            redis_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())

        config = self.sandbox_config
        config.api_key = self._api_key
        self.sandbox = serve_in_thread(config)
        values = {
            **self.settings_overrides,
            "SMTP2GO_API_KEY": self._api_key,
            "SMTP2GO_BASE_URL": self.sandbox.base_url,
            "CELERY_BROKER_URL": self.broker_url,
        }
        if self.redis_url:
            values["OUTBOX_REDIS_URL"] = self.records_url
        settings = Settings.model_validate(values)
        self.runtime = Runtime.from_settings(settings, redis_client=redis_client)
        set_runtime(self.runtime)
        self._saved_conf = _switch_broker(app, self.broker_url)
        if self.redis_url:
            self._check_broker_empty(app)
        self.worker = EmbeddedWorker(app, concurrency=self.concurrency)
        self.worker.start()
        return self.runtime

    def _real_redis(self) -> Any:
        import redis

        for url, what in ((self.broker_url, "broker"), (self.records_url, "records")):
            client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
            try:
                client.ping()
            except redis.RedisError as exc:
                raise StackError(
                    f"cannot reach Redis at {redacted_url(url)} (--redis, {what}): {exc}", 3
                ) from None
            finally:
                client.close()
        from outbox.core.redis_url import connect

        return connect(self.records_url)

    def _check_broker_empty(self, app: Any) -> None:
        """Tasks already waiting would be sent to this sandbox and break the count."""
        waiting = 0
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in QUEUES:
                with contextlib.suppress(Exception):
                    waiting += int(channel.queue_declare(queue=queue, passive=True)[1])
        if waiting:
            raise StackError(
                f"the broker database {redacted_url(self.broker_url)} already holds {waiting} "
                "queued tasks; the demo needs databases of its own (another --redis database)",
                2,
            )

    def stop(self) -> None:
        """Stop the worker, then the sandbox; restore the app; with ``--redis``, remove
        the lasting keys the run wrote. Safe to call twice."""
        from outbox.worker.celery_app import app

        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.runtime is not None:
            # Closing the client's keep-alive connections first lets the sandbox stop
            # at once instead of waiting out its graceful-shutdown timeout.
            self.runtime.close()
            with contextlib.suppress(Exception):
                self.runtime.redis.close()
            set_runtime(None)
            self.runtime = None
        if self.sandbox is not None:
            self.sandbox.stop(timeout=5.0)
            self.sandbox = None
        if self._saved_conf is not None:
            _restore_broker(app, self._saved_conf)
            self._saved_conf = None
        if self._tidy is not None:
            tidy, self._tidy = self._tidy, None
            try:
                self.keys_removed = tidy.sweep()
            except Exception as exc:  # the run's outcome stands; say what was left
                logger.warning("could not remove the demo's lasting keys from Redis: %s", exc)
