"""What outbox keeps about the SMTP2GO account: the latest statistics and quota read.

The quota read also sets what is left of the month's allowance (``keys.quota_left``,
expiring when the cycle ends); the claim script takes each email's recipients from it
and throttles an email that would overdraw it (``keys.throttled``) until a later read
finds room.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from outbox.core.store import keys
from outbox.core.text import as_text

__all__ = ["Account"]


class Account:
    def __init__(self, redis: Any, *, retention: int) -> None:
        self.redis = redis
        self.retention = retention

    def save_stats(self, snapshot: Mapping[str, Any]) -> None:
        self.redis.set(keys.stats_snapshot(), json.dumps(dict(snapshot)), ex=self.retention)

    def stats(self) -> dict[str, Any] | None:
        raw = self.redis.get(keys.stats_snapshot())
        return json.loads(raw) if raw else None

    def save_quota(self, quota: Mapping[str, Any]) -> None:
        self.redis.set(keys.quota(), json.dumps(dict(quota)), ex=self.retention)

    def quota(self) -> dict[str, Any] | None:
        raw = self.redis.get(keys.quota())
        return json.loads(raw) if raw else None

    def set_quota_left(self, left: int, *, until: float | None) -> None:
        """What the month's allowance has left, until the cycle ends (``None``: no quota
        applies, nothing is throttled for one)."""
        if until is None:
            self.redis.delete(keys.quota_left())
        else:
            self.redis.set(keys.quota_left(), int(left), pxat=int(until * 1000))

    def quota_left(self) -> int | None:
        raw = self.redis.get(keys.quota_left())
        return int(raw) if raw is not None else None

    def throttled(self, limit: int = 10_000) -> list[str]:
        """Chunks waiting for the quota, longest waiting first."""
        return [as_text(c) for c in self.redis.zrange(keys.throttled(), 0, limit - 1)]

    def throttled_count(self) -> int:
        return int(self.redis.zcard(keys.throttled()))

    def forget_throttled(self, chunk_ids: list[str]) -> None:
        """Drop chunks that are no longer there (their records expired)."""
        if chunk_ids:
            self.redis.zrem(keys.throttled(), *chunk_ids)

    def deny(self, path: str, until: float) -> None:
        """The key may not call ``path`` (as the API said); nobody asks again before
        ``until``."""
        self.redis.hset(keys.permissions(), path, repr(until))
        self.redis.expire(keys.permissions(), self.retention)

    def allow(self, paths: list[str]) -> None:
        if paths:
            self.redis.hdel(keys.permissions(), *paths)

    def denied(self, path: str, now: float) -> bool:
        raw = self.redis.hget(keys.permissions(), path)
        return raw is not None and float(raw) > now

    def denials(self, now: float) -> dict[str, float]:
        """Every endpoint the key is known to be refused, and until when."""
        raw = self.redis.hgetall(keys.permissions())
        out = {as_text(k): float(v) for k, v in raw.items()}
        return {k: v for k, v in out.items() if v > now}

    def take_turn(self, job: str, seconds: float) -> bool:
        """True for one caller per ``seconds`` across the fleet (a probe, a log line)."""
        return bool(self.redis.set(keys.turn(job), "1", nx=True, px=int(seconds * 1000)))
