"""What outbox keeps about the SMTP2GO account: the latest statistics and quota read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from outbox.worker.store import keys

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

    def take_turn(self, job: str, seconds: float) -> bool:
        """True for one caller per ``seconds`` across the fleet (a probe, a log line)."""
        return bool(self.redis.set(keys.turn(job), "1", nx=True, px=int(seconds * 1000)))
