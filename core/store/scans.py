"""What ``activity/search`` scans found: chunk id -> ``email_id``, and how far they read.

One worker scans at a time (:meth:`Scans.exclusive`): the in-flight chunks of one crash
come back together, and one scan answers them all.

A scan writes its finds and its marks (the Redis time it started, the time it read
from) in one transaction, and a reader takes them in one transaction too: read apart, a
scan landing between the two reads would look finished without the find it made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outbox.core.store import keys
from outbox.core.text import as_text

__all__ = ["Scans"]


class Scans:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def exclusive(self, seconds: float) -> Any | None:
        """The scanning lock (a ``redis.lock.Lock`` to release), or ``None`` while another
        worker scans; held ``seconds`` at most should its worker die."""
        lock = self.redis.lock(keys.reconcile_scanning(), timeout=seconds, blocking=False)
        return lock if lock.acquire() else None

    def read(self, chunk_id: str) -> tuple[str | None, float, float]:
        """``(email_id or None, last finished scan's start, how far back it read)``."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(keys.reconcile_found(), chunk_id)
        # Two GETs, not MGET: a cluster pipeline refuses multi-key commands.
        pipe.get(keys.reconcile_scanned("at"))
        pipe.get(keys.reconcile_scanned("from"))
        email_id, scanned, reach = pipe.execute()
        found = as_text(email_id) if email_id else None
        return found or None, float(scanned or 0), float(reach or 0)

    def write(
        self, found: Mapping[str, str], *, started: float, since: float, complete: bool, ttl: int
    ) -> None:
        """Store a scan's finds, and (when it read everything) its marks, together."""
        pipe = self.redis.pipeline(transaction=True)
        if found:
            pipe.hset(keys.reconcile_found(), mapping=dict(found))
        pipe.expire(keys.reconcile_found(), ttl)
        if complete:
            pipe.set(keys.reconcile_scanned("at"), f"{started:.6f}", ex=ttl)
            pipe.set(keys.reconcile_scanned("from"), f"{since:.6f}", ex=ttl)
        pipe.execute()
