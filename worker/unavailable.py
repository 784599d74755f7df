"""Tasks that meet an unreachable Redis go back to the broker instead of failing.

With ``task_acks_late`` Celery acknowledges a task that raised, so an exception from a
Redis outage would drop the message: a chunk claimed, or sent but not yet recorded,
stays ``sending`` until the stuck sweep; a webhook event is lost; a fan-out leaves its
batch ``queued`` until the sweep republishes it. Handed back with
``Reject(requeue=True)`` (and, if even that cannot reach the broker, left
unacknowledged so it returns after the visibility timeout), the next run settles it.
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

#: Redis (records, limiter) or the broker unreachable: nothing the message did wrong.
UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)
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
            except Reject as exc:
                # Celery's retry could not publish the next attempt and would drop it.
                if exc.requeue or not isinstance(exc.reason, UNAVAILABLE):
                    raise
                reason = exc.reason
            logger.warning(
                "%s: %s; handing the task back to the broker", describe(*args, **kwargs), reason
            )
            time.sleep(UNAVAILABLE_PAUSE)
            raise Reject(f"Redis or the broker unavailable: {reason}", requeue=True)

        return wrapper

    return decorate
