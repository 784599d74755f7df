"""The fleet's state at a glance, for a metrics scrape: one round trip, nothing written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from outbox.core.store import keys

__all__ = ["Overview", "read_overview"]


@dataclass(frozen=True, slots=True)
class Overview:
    #: Chunks in the dead letters (retries exhausted), waiting for a replay.
    dead_letters: int
    #: Chunks refused for good, indexed for replays by error.
    failed_letters: int
    #: Task calls parked in Redis (retries, ``send_at``, holds) until their time.
    parked: int
    #: The account's sending is held (the API refused the key).
    held: bool
    #: Seconds of shared cool-down left (0: none).
    cooling_for: float
    #: The monthly quota as last read (``stats/email_cycle``), or ``None``.
    quota: dict[str, Any] | None
    #: Chunks canceled, ever (a counter), and chunks paused now, fleet-wide.
    canceled: int = 0
    paused: int = 0


def read_overview(redis: Any) -> Overview:
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.dead_letters())
    pipe.zcard(keys.failed_letters())
    pipe.zcard(keys.parked())
    pipe.exists(keys.account_hold())
    pipe.get(keys.cooldown())
    pipe.time()
    pipe.get(keys.quota())
    pipe.hmget(keys.tally(), ["canceled", "paused"])
    dead, failed, parked, held, until, (seconds, micros), quota, tally = pipe.execute()
    now = float(seconds) + float(micros) / 1_000_000
    try:
        read = json.loads(quota) if quota else None
    except ValueError:
        read = None
    return Overview(
        dead_letters=int(dead),
        failed_letters=int(failed),
        parked=int(parked),
        held=bool(held),
        cooling_for=max(0.0, float(until) - now) if until is not None else 0.0,
        quota=read if isinstance(read, dict) else None,
        canceled=int(tally[0] or 0),
        paused=max(0, int(tally[1] or 0)),
    )
