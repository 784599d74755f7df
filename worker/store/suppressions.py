"""The local suppression set: addresses producers refuse before anything is enqueued.

Filled by webhooks (hard bounces, spam complaints) and by the beat job that pulls the
account's suppression list. It has no TTL: an operator empties it on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from outbox.worker.store import keys

__all__ = ["Suppressions"]


class Suppressions:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def add(self, *addresses: str) -> int:
        """Add comparable addresses (``address_key``); how many were new."""
        return int(self.redis.sadd(keys.suppressed(), *addresses)) if addresses else 0

    def matching(self, addresses: Iterable[str]) -> set[str]:
        """The subset of comparable ``addresses`` that is suppressed (one round trip; two
        once an address was erased, whose suppression is kept as a keyed hash)."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        pipe.smismember(keys.suppressed(), wanted)
        pipe.get(keys.erase_key())
        flags, secret = pipe.execute()
        hits = {a for a, hit in zip(wanted, flags, strict=True) if hit}
        if secret is not None and self.redis.scard(keys.suppressed_erased()):
            hashed = [erased_hash(secret, a) for a in wanted]
            again = self.redis.smismember(keys.suppressed_erased(), hashed)
            hits |= {a for a, hit in zip(wanted, again, strict=True) if hit}
        return hits

    def erase(self, address: str) -> bool:
        """Keep an erased address suppressed as a keyed hash only; true when it was."""
        if not self.redis.srem(keys.suppressed(), address):
            return False
        self.redis.set(keys.erase_key(), secrets.token_hex(32), nx=True)
        secret = self.redis.get(keys.erase_key())
        self.redis.sadd(keys.suppressed_erased(), erased_hash(secret, address))
        return True


def erased_hash(secret: bytes | str, address: str) -> str:
    """HMAC-SHA256 of a comparable address under the installation's erase key."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()
