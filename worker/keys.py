"""Every Redis key outbox writes, in one place.

All keys share the ``outbox:`` prefix so one instance can live beside other data, and
every write sets a TTL (the retention) except the dead-letter index and the suppression
set, which an operator empties on purpose.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "active",
    "batch",
    "batch_payload",
    "chunk",
    "chunk_events",
    "cooldown",
    "dead_letters",
    "email_index",
    "idempotency",
    "limiter",
    "parked",
    "reconcile_found",
    "reconcile_scanned",
    "stats_snapshot",
    "suppressed",
    "webhook_unmatched",
]

PREFIX = "outbox:"


def batch(batch_id: str) -> str:
    """Hash: one producer call (kind, state, counts per state, callback, ...)."""
    return f"{PREFIX}batch:{batch_id}"


def batch_payload(batch_id: str) -> str:
    """String: the payload shared by the batch's chunks (JSON), kept for replay and sweeps."""
    return f"{PREFIX}batch:{batch_id}:payload"


def chunk(chunk_id: str) -> str:
    """Hash: one API request's worth of recipients and its history."""
    return f"{PREFIX}chunk:{chunk_id}"


def chunk_events(chunk_id: str) -> str:
    """Hash: delivery events from webhooks, keyed by a digest so duplicates collapse."""
    return f"{PREFIX}chunk:{chunk_id}:events"


def email_index(email_id: str) -> str:
    """String: SMTP2GO ``email_id`` -> chunk id, so webhook events find their record."""
    return f"{PREFIX}email:{email_id}"


def idempotency(key: str) -> str:
    """String: a producer's idempotency key -> the batch id it created."""
    return f"{PREFIX}idem:{key}"


def limiter(bucket: str) -> str:
    """String: GCRA theoretical arrival time of a rate-limit bucket."""
    return f"{PREFIX}limit:{bucket}"


def cooldown(bucket: str) -> str:
    """String: until when (Redis clock) a bucket is cooling down after a 429."""
    return f"{PREFIX}cooldown:{bucket}"


def active() -> str:
    """Sorted set: chunk ids not yet final, scored by their last change (the sweep's index)."""
    return f"{PREFIX}active"


def reconcile_found() -> str:
    """Hash: chunk id -> ``email_id`` found by ``activity/search`` scans."""
    return f"{PREFIX}reconcile:found"


def reconcile_scanned(edge: str) -> str:
    """String: the Redis time a scan started (``at``) or the window it read from (``from``)."""
    return f"{PREFIX}reconcile:scanned_{edge}"


def dead_letters() -> str:
    """Sorted set: dead chunk ids scored by the time they died."""
    return f"{PREFIX}dead"


def parked() -> str:
    """Sorted set: task calls waiting longer than the broker may hold them, by due time."""
    return f"{PREFIX}parked"


def suppressed() -> str:
    """Set: addresses producers refuse (hard bounces, spam complaints, synced suppressions)."""
    return f"{PREFIX}suppressed"


def stats_snapshot() -> str:
    """String: the latest ``stats/email_summary`` answer with the time it was taken."""
    return f"{PREFIX}stats:email_summary"


def webhook_unmatched() -> str:
    """List: webhook events naming no message of ours (newest first, bounded)."""
    return f"{PREFIX}webhooks:unmatched"
