"""The local suppression set: addresses producers refuse before anything is enqueued.

Filled by webhooks (hard bounces, spam complaints), by the beat job that pulls the
account's suppression list and by ``outbox suppressions add``. It has no TTL: an
operator empties it on purpose (``outbox suppressions remove``), and a lifted address is
remembered for a day, by its keyed hash, so that a sync whose read began before the
removal cannot bring it back from SMTP2GO's list as it was.

An erased address (``outbox.erase``) is kept only as a keyed hash (HMAC-SHA256 under a
random key made once per installation): a suppressed one stays refused by its hash, and
every erased one is remembered, by its hash, with what became of it at SMTP2GO, so a
sync that still finds it on SMTP2GO's list keeps it refused by its hash, never
readable again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any, TypedDict

from outbox.core.store import keys, scripts
from outbox.core.text import as_text

__all__ = ["LIFTED_KEPT", "Suppressions"]

#: Addresses asked about per command.
_PAGE = 10_000
#: Above this many addresses (and more than the set holds), the set is read instead.
_ASK_UP_TO = 1_000
#: Addresses a sync adds per script call, each beside its keyed hash (on a local Redis,
#: round trip included: 1,000 took 4-14 ms, 500 under 5 ms).
_SYNC_PAGE = 500
#: Addresses lifted per script call (1,000 took 4-7 ms; 10,000 in one call 50-140 ms).
_LIFT_PAGE = 500
#: How long a lifted suppression is remembered: far longer than a sync run lasts (50
#: pages, each in a slot of the shared limit and within the client's timeout).
LIFTED_KEPT = 86_400.0


class LiftArgs(TypedDict):
    #: Seconds a lifted address is remembered.
    kept: float
    #: How many addresses follow, each as two ARGVs: itself and its keyed hash.
    n: int


class SyncArgs(TypedDict):
    #: When the sync's read began (Redis clock).
    since: float
    #: How many addresses follow, each as two ARGVs: itself and its keyed hash.
    n: int


class Suppressions:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._lift = scripts.load(redis, "lift")
        self._sync = scripts.load(redis, "sync_suppressed")

    def add(self, *addresses: str) -> int:
        """Add comparable addresses (``address_key``); how many were new."""
        return int(self.redis.sadd(keys.suppressed(), *addresses)) if addresses else 0

    def add_synced(self, addresses: Iterable[str], since: float) -> int:
        """Add comparable addresses a sync read from SMTP2GO's list, the read having begun
        at ``since`` (the Redis clock): those lifted since then are left out, as the read
        may predate their removal, and an erased one is added by its keyed hash only. How
        many were new."""
        wanted = list(dict.fromkeys(addresses))
        secret = self.redis.get(keys.erase_key())  # none: nothing was erased or lifted
        keys_ = [
            keys.suppressed(),
            keys.suppressed_lifted(),
            keys.suppressed_erased(),
            keys.erased(),
        ]
        added = 0
        for start in range(0, len(wanted), _SYNC_PAGE):
            page = wanted[start : start + _SYNC_PAGE]
            # each address beside its own hash, as lift's
            pairs = [
                part
                for a in page
                for part in (a, erased_hash(secret, a) if secret is not None else "")
            ]
            named = scripts.args(SyncArgs(since=since, n=len(page)))
            added += int(self._sync(keys=keys_, args=[*named, *pairs]))
        return added

    def remove(self, *addresses: str) -> list[str]:
        """Lift the suppression of comparable addresses, so they may be sent to again (an
        erased one's keyed hash goes too; unlike :meth:`erase`, nothing stays refused);
        the ones that were suppressed. Each is remembered as lifted, by its keyed hash,
        for :data:`LIFTED_KEPT` seconds (:meth:`add_synced`); an erased address stays
        remembered as erased, so a sync still never stores it readable. A page of
        addresses per script call."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return []
        secret = self._secret()
        keys_ = [keys.suppressed(), keys.suppressed_erased(), keys.suppressed_lifted()]
        lifted: list[str] = []
        for start in range(0, len(wanted), _LIFT_PAGE):
            page = wanted[start : start + _LIFT_PAGE]
            # each address beside its own hash, so neither list is counted into the other
            pairs = [part for a in page for part in (a, erased_hash(secret, a))]
            flags = self._lift(
                keys=keys_, args=[*scripts.args(LiftArgs(kept=LIFTED_KEPT, n=len(page))), *pairs]
            )
            lifted += [a for a, was in zip(page, flags, strict=True) if int(was)]
        return lifted

    def members(self) -> set[str]:
        """Every address (or domain) in the set, read a page at a time."""
        return {as_text(m) for m in self.redis.sscan_iter(keys.suppressed(), count=1000)}

    def erased_count(self) -> int:
        """How many erased addresses are still refused, kept as keyed hashes only."""
        return int(self.redis.scard(keys.suppressed_erased()))

    def matching(self, addresses: Iterable[str]) -> set[str]:
        """The subset of comparable ``addresses`` that is suppressed (one round trip for a
        send of up to 1,000; one more once an address was erased, whose suppression is
        kept as a keyed hash)."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.erase_key())
        if len(wanted) <= _ASK_UP_TO:
            pipe.smismember(keys.suppressed(), wanted)
            secret, flags = pipe.execute()
        else:
            pipe.scard(keys.suppressed())
            secret, size = pipe.execute()
            flags = self._large(wanted, int(size))
        hits = {a for a, hit in zip(wanted, flags, strict=True) if hit}
        if secret is not None and self.redis.scard(keys.suppressed_erased()):
            hashed = [erased_hash(secret, a) for a in wanted]
            again = [
                hit
                for start in range(0, len(hashed), _PAGE)
                for hit in self.redis.smismember(
                    keys.suppressed_erased(), hashed[start : start + _PAGE]
                )
            ]
            hits |= {a for a, hit in zip(wanted, again, strict=True) if hit}
        return hits

    def _large(self, wanted: list[str], size: int) -> list[bool]:
        """Membership of many addresses, no command holding Redis for long: a set smaller
        than the list is read a page at a time and compared here (rather than every
        address sent to Redis); else the addresses are asked about a page per command."""
        if size < len(wanted):
            suppressed = self.members()
            return [a in suppressed for a in wanted]
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(wanted), _PAGE):
            pipe.smismember(keys.suppressed(), wanted[start : start + _PAGE])
        return [hit for page in pipe.execute() for hit in page]

    def erase(self, address: str, *, at_smtp2go: str = "", refused: bool = False) -> bool:
        """Keep an erased address suppressed as a keyed hash only (also when ``refused``:
        SMTP2GO held it suppressed); true when it was suppressed here.

        Every erased address is remembered by its hash with ``at_smtp2go`` (what became
        of it there), first: a sync adding it meanwhile adds the hash instead."""
        hashed = erased_hash(self._secret(), address)
        self.redis.hset(keys.erased(), hashed, at_smtp2go or "not asked")
        was = bool(self.redis.srem(keys.suppressed(), address))
        if was or refused:
            self.redis.sadd(keys.suppressed_erased(), hashed)
        return was

    def erased_note(self, address: str) -> str | None:
        """What became of an erased address at SMTP2GO; ``None`` when it was not erased."""
        secret = self.redis.get(keys.erase_key())
        if secret is None:
            return None
        raw = self.redis.hget(keys.erased(), erased_hash(secret, address))
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    def _secret(self) -> bytes | str:
        """The installation's erase key, made on first use."""
        self.redis.set(keys.erase_key(), secrets.token_hex(32), nx=True)
        secret: bytes | str = self.redis.get(keys.erase_key())
        return secret


def erased_hash(secret: bytes | str, address: str) -> str:
    """HMAC-SHA256 of a comparable address under the installation's erase key."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
