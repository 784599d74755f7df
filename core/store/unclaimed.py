"""Chunks whose task was published and that no worker has claimed yet, by queue.

The Redis broker runs without acknowledgement emulation (``celeryconfig``), so a message
a worker took off its queue exists only in that worker's memory until the task claims
its chunk. A worker killed in that short gap loses the message. This index finds it: the
queues are first in, first out, so a chunk published before the oldest message still
waiting on its queue, and still unclaimed, was taken and lost (:mod:`outbox.worker.relay`
publishes it again; a duplicate is a no-op at the claim). The create script adds each
chunk due now; every later publish re-stamps it; the claim script removes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from outbox.core.store import keys
from outbox.core.text import as_text

__all__ = ["Unclaimed"]


class Unclaimed:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def mark(self, queue: str, chunk_ids: Iterable[str], when: float) -> None:
        """Chunks (re)published to ``queue`` at ``when`` (Redis time)."""
        ids = {chunk_id: when for chunk_id in chunk_ids}
        if ids:
            self.redis.zadd(keys.unclaimed(queue), ids)

    def older_than_many(self, cutoffs: dict[str, float], limit: int = 200) -> dict[str, list[str]]:
        """Each queue's unclaimed chunks published before its cutoff, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for queue, cutoff in cutoffs.items():
            pipe.zrangebyscore(keys.unclaimed(queue), "-inf", cutoff, start=0, num=limit)
        return {
            queue: [as_text(r) for r in rows]
            for queue, rows in zip(cutoffs, pipe.execute(), strict=True)
        }

    def forget(self, queue: str, chunk_ids: Iterable[str]) -> None:
        ids = list(chunk_ids)
        if ids:
            self.redis.zrem(keys.unclaimed(queue), *ids)
