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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from outbox.core.queues import TaskName
from outbox.core.store import keys, scripts
from outbox.core.text import as_text, compact_json

#: ``BLPOP`` treats a timeout that rounds to zero as "forever": shorter waits are slept.
_SHORTEST_BLOCK = 0.005

#: Calls parked per script call: a send of many chunks parked at once (``send_at``, or
#: the broker down) is parked a page at a time, each a couple of milliseconds of Redis
#: (1,000 in one call took 9-13 ms).
PARK_PAGE = 200

__all__ = ["PARK_PAGE", "Call", "Due", "Parked"]


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
        return compact_json(body, sort_keys=True)

    @classmethod
    def from_member(cls, raw: str | bytes) -> Call:
        body = json.loads(raw)
        return cls(TaskName(body["task"]), body.get("chunk"), tuple(body.get("args") or ()))


@dataclass(frozen=True, slots=True)
class Due:
    """What the relay takes: due calls (with their members, to release once published)
    and the chunks whose holder's lease ran out; and what it needs to sleep well."""

    calls: list[tuple[Call, bytes]]
    expired: list[str]
    #: Seconds until the next parked call or lease is due (``None``: nothing waits).
    next_in: float | None = None
    #: The account's sending is held (the relay probes the key).
    held: bool = False
    #: This relay's turn to look for messages lost between a fetch and a claim.
    look_for_lost: bool = False


class ParkArgs(TypedDict):
    #: When the calls are due (epoch seconds, Redis clock); the calls follow as ARGVs.
    due: float


class TakeDueArgs(TypedDict):
    lease: float
    limit: int
    look_every: float


class Parked:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._take = scripts.load(redis, "take_due")
        self._park = scripts.load(redis, "park")

    def park(self, call: Call, due: float) -> None:
        """Keep ``call`` until ``due`` (epoch seconds, Redis clock)."""
        self.park_many([call], due)

    def park_many(self, calls: Sequence[Call], due: float) -> None:
        """:meth:`park` for many calls, :data:`PARK_PAGE` per script call."""
        members = [call.member(due) for call in calls]
        named = scripts.args(ParkArgs(due=due))
        for start in range(0, len(members), PARK_PAGE):
            self._park(keys=[keys.parked()], args=[*named, *members[start : start + PARK_PAGE]])

    def take(self, *, lease: float = 60.0, limit: int = 200, look_every: float = 10.0) -> Due:
        """Due calls and expired holds, each leased for ``lease`` seconds; whether sending
        is held; whether this caller looks for lost messages now (one per ``look_every``
        seconds across the fleet)."""
        calls, expired, next_in, held, look = self._take(
            keys=[
                keys.parked(),
                keys.leases(),
                keys.account_hold(),
                keys.turn("look-for-lost"),
                keys.relay_wake(),
            ],
            args=scripts.args(TakeDueArgs(lease=lease, limit=limit, look_every=look_every)),
        )
        wait = float(next_in)
        return Due(
            [(Call.from_member(raw), raw) for raw in calls],
            [as_text(m) for m in expired],
            None if wait < 0 else wait,
            bool(held),
            bool(look),
        )

    def wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or something is parked for sooner (one ``BLPOP``)."""
        if seconds < _SHORTEST_BLOCK:
            time.sleep(max(seconds, 0.0))
            return
        self.redis.blpop([keys.relay_wake()], timeout=seconds)

    def due_again(
        self, members: Sequence[bytes | str], chunk_ids: Sequence[str], at: float
    ) -> None:
        """Give back what a take leased but could not publish, due at ``at`` (only entries
        still there: a call released meanwhile stays released)."""
        if not members and not chunk_ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        if members:
            pipe.zadd(keys.parked(), {m: at for m in members}, xx=True)
        if chunk_ids:
            pipe.zadd(keys.leases(), {c: at for c in chunk_ids}, xx=True)
        pipe.execute()

    def release(self, member: bytes | str) -> None:
        """Forget a call once it has been published."""
        self.redis.zrem(keys.parked(), member)

    def release_many(self, members: Sequence[bytes | str]) -> None:
        """Forget calls once they have been published (one command)."""
        if members:
            self.redis.zrem(keys.parked(), *members)

    def count(self) -> int:
        return int(self.redis.zcard(keys.parked()))
