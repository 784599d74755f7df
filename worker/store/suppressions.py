"""The local suppression set: addresses producers refuse before anything is enqueued.

Filled by webhooks (hard bounces, spam complaints) and by the beat job that pulls the
account's suppression list. It has no TTL: an operator empties it on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from outbox.worker.store import keys

__all__ = ["Suppressions"]


class Suppressions:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def add(self, *addresses: str) -> int:
        """Add comparable addresses (``address_key``); how many were new."""
        return int(self.redis.sadd(keys.suppressed(), *addresses)) if addresses else 0

    def matching(self, addresses: Iterable[str]) -> set[str]:
        """The subset of comparable ``addresses`` that is suppressed (one round trip)."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return set()
        flags = self.redis.smismember(keys.suppressed(), wanted)
        return {a for a, hit in zip(wanted, flags, strict=True) if hit}
