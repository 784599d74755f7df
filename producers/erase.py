"""Forgetting one person: ``erase(address)`` (GDPR article 17).

Every place outbox keeps an address or phone number (a chunk's recipients and payload
fields, its history, its delivery events, the ledger, a send's shared payload and its
list of refused recipients, the unmatched webhook events) has it replaced by a
redaction (``erased:<hash>``), so counts and records still add up. A suppressed address
stays suppressed, as a keyed hash (``Suppressions.erase``). Redis is read with ``SCAN``
and a pipeline per page of keys: no command holds it for long, whatever the size.

What SMTP2GO itself keeps is its own: see the README ("Erasing a person").
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from outbox.boundary import public_call
from outbox.core.errors import ConfigurationError, SMTP2GOError, ValidationError
from outbox.core.smtp2go.checks import address_key
from outbox.core.store import keys
from outbox.core.text import as_text
from outbox.worker.runtime import Runtime, get_runtime

__all__ = ["erase"]

logger = logging.getLogger(__name__)

#: Keys read per ``SCAN`` step and per pipeline.
_PAGE = 500
#: Chunk hash fields that can hold an address.
_CHUNK_FIELDS = ("recipients", "fields", "failures", "last_error", "message_ids")


def _redaction(target: str) -> str:
    return "erased:" + hashlib.sha256(target.encode()).hexdigest()[:12]


class _Eraser:
    def __init__(self, redis: Any, target: str) -> None:
        self.redis = redis
        self.target = target
        self.redacted = _redaction(target)
        self.pattern = re.compile(re.escape(target), re.IGNORECASE)
        self.changed = 0

    def text(self, value: Any) -> str | None:
        """``value`` with the address replaced, or ``None`` when it is not there."""
        raw = as_text(value, errors="replace")
        if not self.pattern.search(raw):
            return None
        # JSON stays JSON: the replacement has no character that needs escaping
        return self.pattern.sub(self.redacted, raw)

    def scan(self, match: str) -> Any:
        return self.redis.scan_iter(match=match, count=_PAGE)

    def pages(self, match: str, skip: tuple[str, ...] = ()) -> Any:
        page: list[str] = []
        for raw in self.scan(match):
            name = as_text(raw)
            if name.endswith(skip):
                continue
            page.append(name)
            if len(page) >= _PAGE:
                yield page
                page = []
        if page:
            yield page

    def chunks(self) -> None:
        for page in self.pages(keys.PREFIX + "chunk:*", skip=(":log", ":events")):
            pipe = self.redis.pipeline(transaction=False)
            for name in page:
                pipe.hmget(name, *_CHUNK_FIELDS)
            writes = self.redis.pipeline(transaction=False)
            dirty = False
            for name, values in zip(page, pipe.execute(), strict=True):
                new = {
                    f: t
                    for f, v in zip(_CHUNK_FIELDS, values, strict=True)
                    if v and (t := self.text(v))
                }
                if new:
                    writes.hset(name, mapping=new)
                    self.changed += 1
                    dirty = True
            if dirty:
                writes.execute()

    def lists(self, match: str) -> None:
        for page in self.pages(match):
            pipe = self.redis.pipeline(transaction=False)
            for name in page:
                pipe.lrange(name, 0, -1)
            writes = self.redis.pipeline(transaction=False)
            dirty = False
            for name, entries in zip(page, pipe.execute(), strict=True):
                for i, entry in enumerate(entries):
                    if (new := self.text(entry)) is not None:
                        writes.lset(name, i, new)
                        self.changed += 1
                        dirty = True
            if dirty:
                writes.execute()

    def hashes(self, match: str, *, rename_field: bool = False) -> None:
        for page in self.pages(match):
            pipe = self.redis.pipeline(transaction=False)
            for name in page:
                pipe.hgetall(name)
            writes = self.redis.pipeline(transaction=False)
            dirty = False
            for name, mapping in zip(page, pipe.execute(), strict=True):
                for field, value in mapping.items():
                    field_text = as_text(field)
                    new_value = self.text(value)
                    new_field = self.text(field_text) if rename_field else None
                    if new_field is not None:
                        writes.hdel(name, field_text)
                        writes.hset(name, new_field, new_value if new_value is not None else value)
                    elif new_value is not None:
                        writes.hset(name, field_text, new_value)
                    else:
                        continue
                    self.changed += 1
                    dirty = True
            if dirty:
                writes.execute()

    def strings(self, match: str) -> None:
        for page in self.pages(match):
            values = self._get_many(page)
            writes = self.redis.pipeline(transaction=False)
            dirty = False
            for name, value in zip(page, values, strict=True):
                if value is not None and (new := self.text(value)) is not None:
                    writes.set(name, new, keepttl=True)
                    self.changed += 1
                    dirty = True
            if dirty:
                writes.execute()

    def _get_many(self, names: list[str]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
        return list(pipe.execute())


@public_call
def erase(address: str) -> int:
    """Remove one person's email address (any case, with or without a display name) or
    phone number from everything outbox keeps; how many places changed. A suppressed
    address stays suppressed (as a keyed hash)."""
    if not isinstance(address, str) or not address.strip():
        raise ValidationError({"address": "an email address or a phone number is required"})
    target = address_key(address) if "@" in address else address.strip()
    rt = get_runtime()
    eraser = _Eraser(rt.redis, target)
    eraser.chunks()
    eraser.lists(keys.PREFIX + "chunk:*:log")
    eraser.hashes(keys.PREFIX + "chunk:*:events")
    eraser.hashes(keys.PREFIX + "batch:*:ledger", rename_field=True)
    eraser.strings(keys.PREFIX + "batch:*:payload")
    eraser.hashes(keys.PREFIX + "batch:????????????????????????????????")
    eraser.lists(keys.webhook_unmatched())
    held, note = _at_smtp2go(rt, target)
    if rt.store.suppressions.erase(target, at_smtp2go=note, refused=held):
        eraser.changed += 1
    # Lifts are kept by keyed hash; one kept in clear by an older release goes too.
    if rt.redis.zrem(keys.suppressed_lifted(), target):
        eraser.changed += 1
    return eraser.changed + note.startswith(REMOVED)


#: How an erasure's record says SMTP2GO lifted the address.
REMOVED = "removed from SMTP2GO's suppression list"


def _at_smtp2go(rt: Runtime, target: str) -> tuple[bool, str]:
    """Lift an address from the account's suppression list, SMTP2GO's copy of it, where
    the key may (as beat asks: a slot of the shared limit, never an endpoint refused
    within the hour): whether SMTP2GO held it suppressed (it stays refused here), and
    what became of it there, for the erasure's record. Neither the note nor the log
    names the address."""
    if "@" not in target:
        return False, "a number: SMTP2GO keeps no suppression of it"
    from outbox.worker.account_api import Denied, NoSlot, held_for, lift_at_smtp2go

    reasons: list[str] = []
    try:
        _ = rt.client  # producers need no key: without one, SMTP2GO is not asked
        reasons = held_for(rt, target)
        lift_at_smtp2go(rt, target, reasons)
    except ConfigurationError:
        note = "not asked: no usable SMTP2GO_API_KEY where erase ran"
    except Denied as denied:
        note = f"not removed: the API key may not call {denied.path} (add /{denied.path})"
    except NoSlot:
        note = "not asked: no slot of the shared rate limit"
    except SMTP2GOError as err:  # its words may quote the address: only what it was
        note = f"not removed: {type(err).__name__} {err.status_code or ''}".rstrip()
    else:
        if not reasons:
            return False, "not on SMTP2GO's suppression list"
        return True, f"{REMOVED} ({', '.join(reasons)})"
    logger.warning(
        "erase: the address may still be on SMTP2GO's suppression list (%s): remove it "
        "there (`outbox suppressions remove`, or SMTP2GO's dashboard); outbox keeps it "
        "refused by its keyed hash only",
        note,
    )
    return bool(reasons), note
