"""Tasks that meet an unreachable Redis go back to the broker instead of failing.

Celery acknowledges a task that raised, so an exception from a Redis outage would drop
the message: a webhook event would be lost, a fan-out would leave its batch ``queued``
until the sweep republishes it, a chunk not yet claimed would wait for the sweep too.
Handed back with ``Reject(requeue=True)`` the message returns to its queue and the next
run settles it. If even that cannot reach the broker the message is lost with the
worker's memory; a chunk a worker had claimed comes back when its lease runs out, the
rest with the stuck sweep.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

__all__ = ["UNAVAILABLE", "UNAVAILABLE_PAUSE", "hand_back_when_unavailable"]

logger = logging.getLogger(__name__)

#: Redis (records, limiter) or the broker unreachable: nothing the message did wrong. On
#: a cluster also a slot with no node serving it (a failover under way, ``CLUSTERDOWN``)
#: and one being moved (``TRYAGAIN``), once redis-py's own retries are spent. (A Sentinel
#: master that was demoted answers ``READONLY``, which redis-py turns into a
#: ``ConnectionError`` after asking the Sentinels again.)
UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.TryAgainError,
    OperationalError,
)
#: Pause before handing a task back (a requeued message is taken again at once).
UNAVAILABLE_PAUSE = 1.0

P = ParamSpec("P")
R = TypeVar("R")


def hand_back_when_unavailable(
    describe: Callable[..., str],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a task body; ``describe`` names what it was doing from its arguments."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except UNAVAILABLE as exc:
                reason: BaseException = exc
            logger.warning(
                "%s: %s; handing the task back to the broker", describe(*args, **kwargs), reason
            )
            time.sleep(UNAVAILABLE_PAUSE)
            raise Reject(f"Redis or the broker unavailable: {reason}", requeue=True)

        return wrapper

    return decorate
