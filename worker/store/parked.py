"""Task calls kept in Redis until their time: every wait longer than a send's own slot.

Retry delays, ``send_at``, an account hold, a slot too far off: the task call is kept in
a sorted set scored by its due time instead of a broker countdown (which a worker holds
in memory and loses when it dies). Each worker process runs a relay
(:mod:`outbox.worker.relay`) that publishes due calls; the take is leased, so a relay
that dies mid-way leaves its calls to another (a second copy is harmless: the chunk's
claim turns it into a no-op). The same take returns the chunks whose holder's lease ran
out (its worker died), which the relay publishes again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from outbox.worker.queues import TaskName
from outbox.worker.store import keys, scripts

__all__ = ["Call", "Due", "Parked"]


@dataclass(frozen=True, slots=True)
class Call:
    """A task call kept for later: a chunk's send (rebuilt from its record when it is
    published), or a task with its own arguments (a webhook event)."""

    task: TaskName
    chunk: str | None = None
    args: tuple[Any, ...] = ()

    def member(self, due: float) -> str:
        """The sorted-set member: the due time is part of it, so a call parked again while
        an earlier copy is being published is a new entry, not one its release deletes."""
        body: dict[str, Any] = {"task": self.task.value, "due": round(due, 6)}
        if self.chunk is not None:
            body["chunk"] = self.chunk
        if self.args:
            body["args"] = list(self.args)
        return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)

    @classmethod
    def from_member(cls, raw: str | bytes) -> Call:
        body = json.loads(raw)
        return cls(TaskName(body["task"]), body.get("chunk"), tuple(body.get("args") or ()))


@dataclass(frozen=True, slots=True)
class Due:
    """What the relay takes: due calls (with their members, to release once published)
    and the chunks whose holder's lease ran out."""

    calls: list[tuple[Call, bytes]]
    expired: list[str]


class Parked:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._take = scripts.load(redis, "take_due")

    def park(self, call: Call, due: float) -> None:
        """Keep ``call`` until ``due`` (epoch seconds, Redis clock)."""
        self.redis.zadd(keys.parked(), {call.member(due): due})

    def park_many(self, calls: Sequence[Call], due: float) -> None:
        """:meth:`park` for many calls in one round trip."""
        if calls:
            self.redis.zadd(keys.parked(), {call.member(due): due for call in calls})

    def take(self, *, lease: float = 60.0, limit: int = 200) -> Due:
        """Due calls and expired holds, each leased for ``lease`` seconds."""
        calls, expired = self._take(keys=[keys.parked(), keys.leases()], args=[lease, limit])
        return Due(
            [(Call.from_member(raw), raw) for raw in calls],
            [m.decode() if isinstance(m, bytes) else str(m) for m in expired],
        )

    def release(self, member: bytes | str) -> None:
        """Forget a call once it has been published."""
        self.redis.zrem(keys.parked(), member)

    def count(self) -> int:
        return int(self.redis.zcard(keys.parked()))
