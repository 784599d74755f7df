"""The per-process objects a worker (or a producer) needs, built once from settings.

Tasks reach Redis, the limiters and the SMTP2GO client through :func:`get_runtime`; the
demo and tests install their own with :func:`set_runtime` (fakeredis, a sandbox URL)
instead of patching anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from outbox.worker.limiter import RateLimiter
from outbox.worker.retry import RetryPolicy
from outbox.worker.settings import Settings, get_settings
from outbox.worker.smtp2go.client import SMTP2GOClient
from outbox.worker.store import RecordStore

__all__ = ["Runtime", "get_runtime", "reset_runtime", "set_runtime"]

#: Limiter buckets: the send endpoints share one; activity/search has its own (60/min).
SEND_BUCKET = "send"
ACTIVITY_BUCKET = "activity"


@dataclass
class Runtime:
    settings: Settings
    redis: Any
    store: RecordStore
    send_limiter: RateLimiter
    activity_limiter: RateLimiter
    policy: RetryPolicy
    _client: SMTP2GOClient | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, redis_client: Any = None, client: SMTP2GOClient | None = None
    ) -> Runtime:
        conn = redis_client or redis.Redis.from_url(
            settings.redis_url, health_check_interval=30, socket_keepalive=True
        )
        return cls(
            settings=settings,
            redis=conn,
            store=RecordStore(conn, retention=settings.retention_seconds),
            send_limiter=RateLimiter(
                conn, SEND_BUCKET, settings.send_rate, margin=settings.rate_margin
            ),
            activity_limiter=RateLimiter(
                conn, ACTIVITY_BUCKET, settings.activity_rate, margin=settings.rate_margin
            ),
            policy=RetryPolicy(
                max_attempts=settings.max_attempts,
                base=settings.retry_base,
                cap=settings.retry_cap,
            ),
            _client=client,
        )

    def warm_up(self, connections: int) -> None:
        """Pay the start-up costs before the first task instead of inside it.

        Otherwise the first tasks of a new worker each build the HTTP client (behind one
        lock), open a Redis connection and meet ``NOSCRIPT``: tens of milliseconds of
        CPU on a small machine, so requests whose rate-limit slots were evenly spaced
        reach the API bunched up, and a provider counting a sliding window answers 429
        (measured: most start-up 429s of ``bench.rate_limit``).
        """
        self.client  # noqa: B018 - builds the process's pooled client
        holders = (self.store, self.send_limiter, self.activity_limiter)
        scripts = [v for h in holders for v in vars(h).values() if isinstance(v, Script)]
        pipe = self.redis.pipeline(transaction=False)
        for script in scripts:
            pipe.script_load(script.script)  # type: ignore[attr-defined]
        pipe.execute()
        pool = self.redis.connection_pool
        opened = [pool.get_connection() for _ in range(connections)]
        for conn in opened:
            pool.release(conn)

    @property
    def client(self) -> SMTP2GOClient:
        """The process's one pooled client; built on first use (needs the API key)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = SMTP2GOClient(
                        self.settings.base_url,
                        self.settings.require_api_key(),
                        timeout=self.settings.smtp2go_timeout,
                    )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


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


def reset_runtime() -> None:
    set_runtime(None)
