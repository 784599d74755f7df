"""Everything outbox keeps in Redis, one home per concept.

====================  ===============================================================
:mod:`.batches`       batches and chunks: create, claim, finish, replay; the ledger
:mod:`.limits`        the shared rate limit: windows, line, cool-downs, holds, waits
:mod:`.parked`        task calls waiting for their time; expired holds
:mod:`.unclaimed`     published chunks no worker has claimed (lost messages)
:mod:`.events`        delivery events on their chunks; events that matched nothing
:mod:`.suppressions`  addresses producers refuse
:mod:`.scans`         what ``activity/search`` scans found
:mod:`.account`       the account's latest statistics and quota
:mod:`.overview`      counts and flags of the whole fleet, read for a metrics scrape
:mod:`.keys`          every key; :mod:`.scripts` the Lua; :mod:`.chunks` the stored chunk
====================  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outbox.core.store.account import Account
from outbox.core.store.batches import Batches
from outbox.core.store.events import Events
from outbox.core.store.limits import Limits
from outbox.core.store.overview import Overview, read_overview
from outbox.core.store.parked import Parked
from outbox.core.store.scans import Scans
from outbox.core.store.suppressions import Suppressions
from outbox.core.store.unclaimed import Unclaimed

__all__ = ["Store"]


@dataclass(frozen=True)
class Store:
    """All of outbox's Redis, for one client (one per process, shared by its threads)."""

    redis: Any
    batches: Batches
    limits: Limits
    parked: Parked
    events: Events
    suppressions: Suppressions
    scans: Scans
    account: Account
    unclaimed: Unclaimed

    @classmethod
    def connect(cls, redis: Any, *, retention: int) -> Store:
        return cls(
            redis=redis,
            batches=Batches(redis, retention=retention),
            limits=Limits(redis),
            parked=Parked(redis),
            events=Events(redis, retention=retention),
            suppressions=Suppressions(redis),
            scans=Scans(redis),
            account=Account(redis, retention=retention),
            unclaimed=Unclaimed(redis),
        )

    def overview(self) -> Overview:
        """Dead letters, parked calls, the hold, the cool-down and the quota: one round trip."""
        return read_overview(self.redis)

    def now(self) -> float:
        """The Redis clock (epoch seconds): every lease and slot is on it."""
        return self.batches.now()
