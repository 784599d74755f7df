"""The shared rate limits in Redis: windows, the line of waiting senders, cool-downs, holds.

The algorithm lives in ``lua/limits.lua`` (its header says why it never lets a window at
the API count more than N arrivals); the chunk scripts (claim, finish, give-back) run it
together with a chunk's own state change, so a send costs no extra round trip for its
slot. This module holds what the Python side needs: a bucket's :class:`Limit` (its keys
and arguments for the scripts), the scripts that are about the limit alone, and the wait
of a sender for a slot granted to it.

A waiting sender blocks on its own wake list (``BLPOP``) instead of polling: the script
that grants it a slot writes the slot's time there; a cool-down that begins meanwhile
writes the later time; a hold writes ``held``. Every message names the attempt it is for
(``<chunk>#<attempt>``), so a stale one is never taken for a new one (:mod:`.codec`
holds both formats).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NotRequired, TypedDict

from outbox.core.store import codec, keys, scripts
from outbox.core.store.codec import Wake
from outbox.core.text import as_text
from outbox.core.windows import Window

__all__ = ["Limit", "Limits", "Wake"]

#: A wait shorter than this is slept locally: ``BLPOP`` treats a timeout that rounds to
#: zero as "forever".
_SHORTEST_BLOCK = 0.005
#: The end of a wait for a slot is slept locally, not blocked on: Redis checks blocked
#: clients' timeouts on its event loop, which an otherwise idle server turns once per
#: ``1000 / hz`` ms (100 ms by default), so a ``BLPOP`` times out up to that late, and a
#: slot used late is rate lost for a whole period. A cool-down or hold told within the
#: last ``_PRECISE_TAIL`` seconds is not heard: that one request goes at its slot.
_PRECISE_TAIL = 0.12


class LimitArgs(TypedDict):
    """The limit block's arguments (``limit_at`` in ``lua/limits.lua``), the ``limit`` of
    every script that runs it."""

    bucket: str
    lease: float
    ttl: int
    line_lease: float
    #: ``[N, P]`` per window, in the order of the block's window keys.
    windows: list[list[float]]
    pace: float
    look: float
    fifo: NotRequired[bool]
    #: Tenants' weights, and their own windows (``[[N, P], ...]``).
    w: NotRequired[dict[str, float]]
    cap: NotRequired[dict[str, list[list[float]]]]


class ServeArgs(TypedDict):
    limit: LimitArgs


class CoolDownArgs(TypedDict):
    seconds: float
    limit: LimitArgs


class HoldArgs(TypedDict):
    #: Why (json); ``None`` releases the hold.
    reason: str | None
    limit: LimitArgs


class AcquireArgs(TypedDict):
    member: str
    max_wait: float
    limit: LimitArgs


class ReleaseArgs(TypedDict):
    member: str
    went_out: bool
    limit: LimitArgs


@dataclass(frozen=True)
class Limit:
    """One bucket of the shared limit (``send`` or ``activity``) and how it is held.

    Its keys and arguments, which every claim and finish sends, are worked out once."""

    bucket: str
    windows: Sequence[Window]
    #: How long a claim holds its slot at most (client timeout and margin): a dead
    #: claimant's request counts until then, plus the window's period.
    lease: float
    #: Retention of the records the scripts write while serving the line.
    ttl: int
    #: How long a place in line holds a chunk before its worker is presumed dead.
    line_lease: float
    #: Slots are granted at least this far apart (P/N of the shortest window; 0: off), so
    #: that a chunk coming later always finds one near.
    pace: float = 0.0
    #: How far ahead a bulk chunk takes a slot; one further off waits without a thread.
    lookahead: float = 0.0
    #: Tenants' shares within a lane (default 1 each).
    weights: Mapping[str, float] = field(default_factory=dict)
    #: Tenants' own limits, below the account's.
    caps: Mapping[str, Sequence[Window]] = field(default_factory=dict)
    #: One first-come line for every chunk (no lanes, no pacing): the old behaviour, kept
    #: as the baseline ``bench.lanes`` measures against.
    fifo: bool = False

    @cached_property
    def _keys(self) -> tuple[str, ...]:
        out = [
            keys.cooldown(),
            keys.account_hold(),
            keys.limit_line(self.bucket),
            keys.limit_granted(self.bucket),
            keys.active(),
            keys.leases(),
        ]
        for i, _ in enumerate(self.windows):
            out += [
                keys.limit_window(self.bucket, i, "busy"),
                keys.limit_window(self.bucket, i, "answered"),
            ]
        return tuple(out)

    @cached_property
    def _args(self) -> LimitArgs:
        out = LimitArgs(
            bucket=self.bucket,
            lease=self.lease,
            ttl=self.ttl,
            line_lease=self.line_lease,
            windows=[[w.count, w.period] for w in self.windows],
            pace=self.pace,
            look=self.lookahead,
        )
        if self.fifo:
            out["fifo"] = True
        if self.weights:
            out["w"] = dict(self.weights)
        if self.caps:
            out["cap"] = {t: [[w.count, w.period] for w in ws] for t, ws in self.caps.items()}
        return out

    def keys(self) -> list[str]:
        return list(self._keys)

    def args(self) -> LimitArgs:
        """The block's arguments, the ``limit`` of a script's (shared: not to be changed)."""
        return self._args


@dataclass(frozen=True, slots=True)
class Grant:
    """A slot granted to a waiting sender: its attempt's member, the slot's time, and the
    Redis time when it was granted (``since``: the local monotonic time it was read)."""

    member: str
    at: float
    now: float
    since: float


class Limits:
    """The limit scripts that involve no chunk, and the waits of senders."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._cool_down = scripts.load(redis, "cool_down")
        self._hold = scripts.load(redis, "hold")
        self._acquire = scripts.load(redis, "acquire")
        self._release = scripts.load(redis, "release")
        self._clock = scripts.load(redis, "clock")
        self._serve = scripts.load(redis, "serve")

    def serve(self, limit: Limit) -> int:
        """Grant waiting chunks the slots now known (a relay's turn); how many."""
        return int(self._serve(keys=limit.keys(), args=scripts.args(ServeArgs(limit=limit.args()))))

    # -- the whole account -------------------------------------------------------------

    def cool_down(self, limit: Limit, seconds: float) -> float:
        """Nobody sends for ``seconds`` (never shortens one); slots granted for earlier are
        moved to its end. Returns the seconds this call added to the fleet's cool-down (0
        when one as long was on already)."""
        _left, added = self._cool_down(
            keys=limit.keys(),
            args=scripts.args(CoolDownArgs(seconds=max(seconds, 0.001), limit=limit.args())),
        )
        return float(added)

    def cooling_for(self) -> float:
        """Seconds of cool-down left (0 when none), by the Redis clock: one round trip."""
        now, until = self._clock(keys=[keys.cooldown()])
        return max(0.0, float(until) - float(now)) if until else 0.0

    def hold(self, limit: Limit, reason: str) -> None:
        """Hold every send (a rejected key): waiting senders are sent away to park."""
        self._hold(
            keys=limit.keys(),
            args=scripts.args(HoldArgs(reason=reason or None, limit=limit.args())),
        )

    def release_hold(self, limit: Limit) -> bool:
        """Lift the hold; true when there was one."""
        released = self._hold(
            keys=limit.keys(), args=scripts.args(HoldArgs(reason=None, limit=limit.args()))
        )
        return bool(int(released))

    def hold_reason(self) -> str | None:
        """Why sending is held, for people, or ``None`` when it is not."""
        raw = self.redis.get(keys.account_hold())
        if raw is None:
            return None
        text = as_text(raw)
        try:
            return str(json.loads(text).get("reason") or text)
        except (ValueError, AttributeError):
            return text

    # -- slots for requests that are not a chunk's ------------------------------------

    def acquire(self, limit: Limit, member: str, *, max_wait: float) -> tuple[bool, float]:
        """``(granted, seconds)``: a slot at most ``max_wait`` ahead (then sleep that long
        before the request), or how long to wait before asking again."""
        granted, wait = self._acquire(
            keys=limit.keys(),
            args=scripts.args(AcquireArgs(member=member, max_wait=max_wait, limit=limit.args())),
        )
        return bool(granted), float(wait)

    def release(self, limit: Limit, member: str, *, went_out: bool) -> None:
        self._release(
            keys=limit.keys(),
            args=scripts.args(ReleaseArgs(member=member, went_out=went_out, limit=limit.args())),
        )

    @contextlib.contextmanager
    def slot(
        self,
        limit: Limit,
        purpose: str,
        *,
        max_wait: float,
        sleep: Callable[[float], None],
        refused: Callable[[float], Exception],
    ) -> Iterator[None]:
        """The block is one request that is not a chunk's (a scheduled job's, a look-up),
        in a slot of ``limit``: it starts at the slot (slept until, at most ``max_wait``
        ahead) and counts as answered when the block ends, whatever happened in it (the
        request may have gone out). No slot that soon raises ``refused(seconds)``: how
        long to wait before asking again."""
        member = f"{purpose}:{uuid.uuid4().hex}"
        granted, wait = self.acquire(limit, member, max_wait=max_wait)
        if not granted:
            raise refused(wait)
        sleep(wait)
        try:
            yield
        finally:
            self.release(limit, member, went_out=True)

    # -- waits ---------------------------------------------------------------------------

    def await_grant(self, limit: Limit, chunk_id: str, timeout: float) -> Grant | Wake:
        """Wait in line for a slot: the grant, or ``HELD``, or ``TIMEOUT``."""
        reply = self.redis.blpop([keys.wake(limit.bucket, chunk_id)], timeout=max(timeout, 1.0))
        if reply is None:
            return Wake.TIMEOUT
        _, got = _read(reply[1])
        return got

    def await_slot(self, limit: Limit, chunk_id: str, grant: Grant) -> Wake:
        """Wait until the granted slot's time; a cool-down may move it, a hold call it off.

        Never early: ``grant.now`` is the Redis time when the slot was granted (at or
        before ``grant.since``, when it was read here), so the wait measured from it ends
        at or after the slot's time on the Redis clock.
        """
        box = keys.wake(limit.bucket, chunk_id)
        while True:
            remaining = grant.at - grant.now - (time.monotonic() - grant.since)
            if remaining <= 0:
                return Wake.GO
            if remaining < _PRECISE_TAIL + _SHORTEST_BLOCK:
                time.sleep(remaining)
                return Wake.GO
            reply = self.redis.blpop([box], timeout=remaining - _PRECISE_TAIL)
            if reply is None:
                continue  # the tail is slept above
            member, got = _read(reply[1])
            if member not in (grant.member, codec.IN_LINE):
                continue  # for an earlier attempt of the chunk
            if not isinstance(got, Grant):
                return got
            grant = got

    def stop_waiting(self, limit: Limit, chunk_ids: list[str]) -> None:
        """Wake this process's waiting senders: the worker is stopping."""
        if chunk_ids:
            pipe = self.redis.pipeline(transaction=False)
            for chunk_id in chunk_ids:
                pipe.rpush(
                    keys.wake(limit.bucket, chunk_id), codec.wake_word(codec.IN_LINE, Wake.STOP)
                )
            pipe.execute()


def _read(raw: Any) -> tuple[str, Grant | Wake]:
    """A wake message (:func:`.codec.read_wake`): whose it is, and the (new) grant or what
    to do instead (held, stop, paused, canceled, throttled)."""
    message = codec.read_wake(as_text(raw))
    if message.word:
        return message.member, Wake(message.word)
    return message.member, Grant(message.member, message.at, message.now, time.monotonic())
