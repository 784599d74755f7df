"""Delivery events from webhooks, kept on the chunk of the message they name.

An event reaches a record only through its ``email_id`` (the index written when the send
was recorded ``sent``); an event naming no message of ours waits in a bounded list
until a later pass can match it. Each event is kept once under its own id, so the
provider's retries (up to 35 over 48 hours) change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from outbox.worker.store import keys, scripts

__all__ = ["FATE_RANK", "Events"]

#: Fates a delivery event can tell about a recipient, by rank: a recipient's fate never
#: gives way to a lower one (a late ``delivered`` does not undo a hard bounce), and a
#: recipient the API never got (failed, dead, suppressed) keeps that fate.
FATE_RANK: dict[str, int] = {
    "queued": 0,
    "sent": 1,
    "soft-bounced": 2,
    "delivered": 3,
    "hard-bounced": 4,
    "rejected": 4,
    "unsubscribed": 5,
    "spam": 5,
    "failed": 9,
    "dead": 9,
    "suppressed": 9,
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


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
        fate: str | None = None,
        recipient: str | None = None,
    ) -> bool:
        """Keep ``event`` on its chunk once (false for a repeat of ``event_id``) and move
        ``recipient`` to ``fate`` in its batch's ledger when the event tells one."""
        batch_id = chunk_id.rsplit(".", 1)[0]
        ranks = [f"{name}={rank}" for name, rank in FATE_RANK.items()]
        added = self._record(
            keys=[keys.chunk_events(chunk_id), keys.ledger(batch_id), keys.ledger_counts(batch_id)],
            args=[
                event_id,
                _dumps(dict(event)),
                self.retention,
                fate or "",
                recipient or "",
                *ranks,
            ],
        )
        return bool(int(added))

    def park_unmatched(self, entry: Mapping[str, Any], *, keep: int) -> None:
        """Keep an event that names no message of ours (the newest ``keep`` are kept)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(keys.webhook_unmatched(), _dumps(dict(entry)))
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
