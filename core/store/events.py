"""Delivery events from webhooks, kept on the chunk of the message they name.

An event reaches a record only through its ``email_id`` or its SMS ``message_id`` (the
indexes written when the send was recorded); an event naming no message of ours waits
in a bounded list until a later pass can match it. Each event is kept once under its
own id (the provider's ``id`` of the notification), so the provider's retries (up to 35
over 48 hours) change nothing, the recipients' places in the ledger included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from outbox.core.states import Fate
from outbox.core.store import keys, scripts
from outbox.core.store.chunks import batch_id_of
from outbox.core.text import compact_json

__all__ = ["Events"]


class EventArgs(TypedDict):
    event_id: str
    #: The event as kept (JSON text).
    event: str
    ttl: int
    #: The place the event tells (``None``: it moves nobody; the prelude's ``FATE_RANK``
    #: orders them).
    fate: Fate | None
    recipients: list[str]
    why: str


class Events:
    def __init__(self, redis: Any, *, retention: int) -> None:
        self.redis = redis
        self.retention = retention
        self._record = scripts.load(redis, "event")

    def record(
        self,
        chunk_id: str,
        event_id: str,
        event: Mapping[str, Any],
        *,
        fate: Fate | None = None,
        recipients: Sequence[str] = (),
        why: str = "",
    ) -> bool:
        """Keep ``event`` on its chunk once (false for a repeat of ``event_id``, which
        changes nothing else) and move ``recipients`` (ledger keys) to ``fate`` in their
        batch's ledger, with ``why`` as their reason when it is given."""
        batch_id = batch_id_of(chunk_id)
        added = self._record(
            keys=[
                keys.chunk_events(chunk_id),
                keys.ledger(batch_id),
                keys.ledger_counts(batch_id),
                keys.chunk(chunk_id),
            ],
            args=scripts.args(
                EventArgs(
                    event_id=event_id,
                    event=compact_json(dict(event)),
                    ttl=self.retention,
                    fate=fate or None,
                    recipients=list(recipients),
                    why=why,
                )
            ),
        )
        return bool(int(added))

    def park_unmatched(self, entry: Mapping[str, Any], *, keep: int) -> None:
        """Keep an event that names no message of ours (the newest ``keep`` are kept)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(keys.webhook_unmatched(), compact_json(dict(entry)))
        pipe.ltrim(keys.webhook_unmatched(), 0, keep - 1)
        pipe.expire(keys.webhook_unmatched(), self.retention)
        pipe.execute()

    def unmatched(self) -> list[tuple[bytes, dict[str, Any]]]:
        """The parked events, newest first, with their raw entries (to forget them by)."""
        out = []
        for raw in self.redis.lrange(keys.webhook_unmatched(), 0, -1):
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append((raw, entry))
        return out

    def forget_unmatched(self, raw: bytes) -> None:
        self.redis.lrem(keys.webhook_unmatched(), 1, raw)
