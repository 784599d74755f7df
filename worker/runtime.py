"""The per-process objects a worker (or a producer) needs, built once from settings.

Tasks reach Redis, the limits, the SMTP2GO client and the clock through
:func:`get_runtime`; the demo and tests install their own with :func:`set_runtime`
(fakeredis, a sandbox URL, a fake clock) instead of patching anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from outbox.core.redis_url import connect
from outbox.core.settings import Settings, get_settings
from outbox.core.store import Store, keys
from outbox.core.store.limits import Limit
from outbox.core.windows import parse_tenant_limits, parse_tenant_weights
from outbox.worker.metrics import Metrics
from outbox.worker.policy import RetryPolicy

if TYPE_CHECKING:
    from outbox.core.smtp2go.client import SMTP2GOClient

__all__ = ["Runtime", "get_runtime", "set_runtime"]

#: Limit buckets: the send endpoints share one; activity/search has its own.
SEND_BUCKET = "send"
ACTIVITY_BUCKET = "activity"


@dataclass
class Runtime:
    settings: Settings
    redis: Any
    store: Store
    send_limit: Limit
    activity_limit: Limit
    policy: RetryPolicy
    #: A monotonic clock and a sleep, for the few waits that are not Redis's.
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: Senders of this process waiting for a slot (chunk id -> token), so a stopping
    #: worker can wake them.
    waiting: dict[str, str] = field(default_factory=dict)
    #: What the worker counts for Prometheus (counts nothing unless it serves metrics).
    metrics: Metrics = field(default_factory=Metrics)
    _client: SMTP2GOClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: ``settings.line_wait``, worked out once (every claim sends it).
    line_wait: float = field(init=False)

    def __post_init__(self) -> None:
        self.line_wait = self.settings.line_wait
        if self._client is not None and self._client.observe is None:
            self._client.observe = self._observe_request  # a client given (demo, tests)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, redis_client: Any = None, client: SMTP2GOClient | None = None
    ) -> Runtime:
        conn = redis_client if redis_client is not None else connect(settings.redis_url)
        ttl = settings.retention_seconds
        line_lease = settings.line_wait + 30.0
        return cls(
            settings=settings,
            redis=conn,
            store=Store.connect(conn, retention=ttl),
            send_limit=Limit(
                SEND_BUCKET,
                settings.send_windows,
                settings.lease,
                ttl,
                line_lease,
                pace=settings.pace,
                lookahead=settings.lookahead,
                weights=parse_tenant_weights(settings.tenant_weights),
                caps=parse_tenant_limits(settings.tenant_limits),
                fifo=settings.sharing == "fifo",
            ),
            activity_limit=Limit(
                ACTIVITY_BUCKET, settings.activity_windows, settings.lease, ttl, line_lease
            ),
            policy=RetryPolicy(
                max_attempts=settings.max_attempts,
                base=settings.retry_base,
                cap=settings.retry_cap,
                hint_cap=settings.cooldown_cap,
            ),
            _client=client,
        )

    def warm_up(self, connections: int) -> None:
        """Pay the start-up costs before the first task instead of inside it.

        Otherwise the first tasks of a new worker each build the HTTP client (behind one
        lock), open a Redis connection and meet ``NOSCRIPT``: tens of milliseconds of CPU
        on a small machine, while the first slots of the shared limit are being used.
        """
        self.client  # noqa: B018 - builds the process's pooled client
        holders = vars(self.store).values()
        found = [v for h in holders for v in vars(h).values() if hasattr(v, "script")]
        for script in found:
            # One call each: a cluster sends SCRIPT LOAD to every primary, and refuses it
            # in a pipeline.
            self.redis.script_load(script.script)
        pool = _pool(self.redis)
        if pool is not None:
            opened = [pool.get_connection() for _ in range(connections)]
            for conn in opened:
                pool.release(conn)

    @property
    def client(self) -> SMTP2GOClient:
        """The process's one pooled client; built on first use (needs the API key)."""
        if self._client is None:
            # Imported here: a producer, which never calls the API, loads no HTTP client.
            from outbox.core.smtp2go.client import SMTP2GOClient

            with self._lock:
                if self._client is None:
                    self._client = SMTP2GOClient(
                        self.settings.base_url,
                        self.settings.require_api_key(),
                        timeout=self.settings.smtp2go_timeout,
                        observe=self._observe_request,
                    )
        return self._client

    def _observe_request(self, endpoint: str, seconds: float, status: int | None) -> None:
        # Looked up on each call: metrics may be switched on after the client was built.
        self.metrics.api_request(endpoint, seconds, status)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _pool(redis: Any) -> Any:
    """The connection pool outbox's keys are reached through (on a cluster, the pool of
    the node that holds their slot), or ``None`` when the client has none to show."""
    if hasattr(redis, "get_node_from_key"):
        node = redis.get_node_from_key(keys.PREFIX)
        return getattr(node.redis_connection, "connection_pool", None)
    return getattr(redis, "connection_pool", None)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime.from_settings(get_settings())
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install the runtime this process uses (the demo, tests); ``None`` to rebuild lazily."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
