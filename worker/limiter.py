"""One rate limit shared by every worker on every machine, held in Redis.

The algorithm is GCRA (the "generic cell rate algorithm"): a bucket stores one number,
the theoretical arrival time (TAT) of the next request. A request may go at
``TAT - (burst - 1) * interval``; granting it moves TAT on by one interval. Both the
check and the move run in one Lua script that reads the clock with Redis ``TIME``, so
hosts with skewed clocks still share one limit and one script call decides a send.

Two refinements make it fit a queue of blocking senders:

* **Reservations.** A caller may accept a short wait (``max_wait``): the script then
  reserves the next free slot and tells the caller how long to sleep. Senders spaced
  this way hit the rate exactly instead of colliding on the next free instant.
* **Cool-downs.** After a 429 every worker must slow down, not only the one that saw it.
  :meth:`RateLimiter.cool_down` writes "nobody sends before T" into Redis; the acquire
  script refuses until then.

A refusal is not an error of the message: the task re-queues itself for the wait the
script returns and no retry attempt is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from outbox.worker import keys
from outbox.worker.settings import Rate

__all__ = ["GCRA_LUA", "Acquisition", "RateLimiter", "Throttled"]

#: Lua for the GCRA step, shared by the limiter and the claim script in ``worker.store``.
#: Expects ``now`` (seconds, Redis clock). Returns granted (0/1) and the wait in seconds.
GCRA_LUA = """
local function outbox_gcra(tat_key, cool_key, interval, burst, max_wait, now)
  local cool = tonumber(redis.call('GET', cool_key) or '0')
  if cool > now then
    return 0, cool - now
  end
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat < now then tat = now end
  local wait = tat - (burst - 1) * interval - now
  if wait < 0 then wait = 0 end
  if wait > max_wait then
    return 0, wait
  end
  local new_tat = tat + interval
  redis.call('SET', tat_key, string.format('%.6f', new_tat),
             'PX', math.ceil((new_tat - now) * 1000) + 1000)
  return 1, wait
end
local function outbox_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

_ACQUIRE_LUA = (
    GCRA_LUA
    + """
local granted, wait = outbox_gcra(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
                                  tonumber(ARGV[3]), outbox_now())
return {granted, string.format('%.6f', wait)}
"""
)

_COOL_DOWN_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untill = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= untill then
  return string.format('%.6f', current - now)
end
redis.call('SET', KEYS[1], string.format('%.6f', untill), 'PX', math.ceil(tonumber(ARGV[1]) * 1000))
return ARGV[1]
"""


class Throttled(Exception):
    """The bucket has no slot within the accepted wait; try again after ``wait`` seconds."""

    def __init__(self, bucket: str, wait: float) -> None:
        super().__init__(f"rate limit {bucket!r}: next slot in {wait:.3f}s")
        self.bucket = bucket
        self.wait = wait


@dataclass(frozen=True, slots=True)
class Acquisition:
    """The script's answer: ``granted`` with a reserved slot ``wait`` seconds ahead, or not."""

    granted: bool
    wait: float


class RateLimiter:
    """A GCRA bucket in Redis; ``with limiter.acquire(max_wait=...)`` before each request."""

    def __init__(
        self,
        redis: Any,
        bucket: str,
        rate: Rate,
        *,
        burst: int = 1,
        margin: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 <= margin < 0.5:
            raise ValueError("margin must be in [0, 0.5)")
        self.redis = redis
        self.bucket = bucket
        self.rate = rate
        self.burst = burst
        #: Requests are spaced ``interval * (1 + margin)`` apart: a limit enforced exactly
        #: at the server (a sliding window) refuses request k+R whenever network jitter
        #: brings it within one period of request k, so spacing at exactly R costs 429s.
        self.interval = rate.interval * (1 + margin)
        self._sleep = sleep
        self._tat_key = keys.limiter(bucket)
        self._cool_key = keys.cooldown(bucket)
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._cool_down = redis.register_script(_COOL_DOWN_LUA)

    @property
    def script_keys(self) -> tuple[str, str]:
        """The two keys the GCRA step touches, for scripts that embed it."""
        return self._tat_key, self._cool_key

    def try_acquire(self, max_wait: float = 0.0) -> Acquisition:
        """Reserve a slot at most ``max_wait`` seconds ahead, or say how long until one."""
        granted, wait = self._acquire(
            keys=[self._tat_key, self._cool_key],
            args=[repr(self.interval), self.burst, repr(max_wait)],
        )
        return Acquisition(bool(int(granted)), float(wait))

    @contextmanager
    def acquire(self, max_wait: float = 0.0) -> Iterator[float]:
        """Hold a slot for the body of the ``with``: sleeps through a short reservation.

        Raises :class:`Throttled` when no slot is free within ``max_wait``.
        """
        result = self.try_acquire(max_wait)
        if not result.granted:
            raise Throttled(self.bucket, result.wait)
        if result.wait > 0:
            self._sleep(result.wait)
        yield result.wait

    def cool_down(self, seconds: float) -> float:
        """Make every worker hold off this bucket for ``seconds`` (never shortens one)."""
        return float(self._cool_down(keys=[self._cool_key], args=[repr(max(seconds, 0.001))]))

    def cooling_after(self, when: float) -> float:
        """Seconds of cool-down left at ``when`` (Redis time; 0 when none): one GET, for
        a caller that already knows the Redis time (the slot it slept until)."""
        until = self.redis.get(self._cool_key)
        return max(0.0, float(until) - when) if until is not None else 0.0

    def cooling_for(self) -> float:
        """Seconds of cool-down left (0 when none), by the Redis clock."""
        until = self.redis.get(self._cool_key)
        if until is None:
            return 0.0
        seconds, micros = self.redis.time()
        return max(0.0, float(until) - (float(seconds) + float(micros) / 1_000_000))

    def reset(self) -> None:
        self.redis.delete(self._tat_key, self._cool_key)
