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
import re
from typing import Any

from outbox.boundary import public_call
from outbox.errors import ValidationError
from outbox.worker.runtime import get_runtime
from outbox.worker.smtp2go.checks import address_key
from outbox.worker.store import keys
from outbox.worker.text import as_text

__all__ = ["erase"]

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
    if rt.store.suppressions.erase(target):
        eraser.changed += 1
    # A suppression lifted in the last day is remembered by its address (for the sync).
    if rt.redis.zrem(keys.suppressed_lifted(), target):
        eraser.changed += 1
    return eraser.changed
