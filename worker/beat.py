"""Scheduled jobs run by ``celery -A outbox.worker beat`` (schedule in ``celeryconfig``)."""

from __future__ import annotations

import json
import logging
from typing import Any

from outbox.worker import keys
from outbox.worker.app import app
from outbox.worker.payloads import chunk_call
from outbox.worker.runtime import get_runtime
from outbox.worker.smtp2go.models import SuppressionView
from outbox.worker.store import batch_id_of
from outbox.worker.webhooks.tasks import rematch_parked

__all__ = [
    "expire_records",
    "rematch_events",
    "stats_snapshot",
    "sweep_stuck",
    "sync_suppressions",
]

logger = logging.getLogger(__name__)


@app.task(name="outbox.beat.stats_snapshot")
def stats_snapshot() -> dict[str, Any]:
    """Keep the latest ``stats/email_summary`` in Redis for dashboards and ``outbox``."""
    rt = get_runtime()
    summary = rt.client.stats_email_summary()
    snapshot = {"taken_at": rt.store.now(), "data": summary.model_dump(mode="json")}
    rt.redis.set(keys.stats_snapshot(), json.dumps(snapshot), ex=rt.settings.retention_seconds)
    return snapshot


@app.task(name="outbox.beat.sync_suppressions")
def sync_suppressions(max_pages: int = 50) -> int:
    """Pull the account's suppression list into the set producers consult."""
    rt = get_runtime()
    token: str | None = None
    addresses: list[str] = []
    for _ in range(max_pages):
        answer = rt.client.suppression_view(SuppressionView(continue_token=token))
        rows = answer.data.get("suppressions") or answer.data.get("results") or []
        for row in rows if isinstance(rows, list) else []:
            address = row.get("email_address") if isinstance(row, dict) else None
            if address:
                addresses.append(str(address).lower())
        token = answer.data.get("continue_token") or None
        if not token:
            break
    if addresses:
        rt.redis.sadd(keys.suppressed(), *addresses)
    return len(addresses)


@app.task(name="outbox.beat.sweep_stuck")
def sweep_stuck() -> int:
    """Publish again every chunk that has not moved for ``OUTBOX_STUCK_AFTER`` seconds.

    A chunk stuck in ``sending`` belonged to a worker that died mid-request; the task
    that picks it up sees the expired claim and reconciles before resending. A chunk
    stuck in ``queued`` was recorded by a producer that died before publishing. Chunks
    waiting for a ``send_at`` or parked for a long retry are left alone. A second copy
    of a task whose first is still queued is harmless: the claim dedupes it.
    """
    rt = get_runtime()
    now = rt.store.now()
    republished = 0
    gone = []
    for chunk_id in rt.store.active_before(now - rt.settings.stuck_after_seconds):
        fields = rt.store.get_chunk_raw(chunk_id)
        if not fields:
            gone.append(chunk_id)
            continue
        if float(fields.get("due_at") or 0) > now:
            continue
        built = chunk_call(rt.store, chunk_id)
        if built is None:
            gone.append(chunk_id)
            continue
        name, args, queue = built
        app.send_task(name, args=args, queue=queue, routing_key=queue)
        rt.store.touch_active(chunk_id, now)
        republished += 1
        logger.warning("chunk %s stuck in %s; published again", chunk_id, fields.get("state"))
    rt.store.forget_active(gone)
    return republished


@app.task(name="outbox.beat.rematch_events")
def rematch_events() -> int:
    """Put parked webhook events on the records of sends indexed since they arrived."""
    return rematch_parked(get_runtime())


@app.task(name="outbox.beat.expire_records")
def expire_records() -> int:
    """Drop index entries whose records expired (the records themselves carry TTLs)."""
    rt = get_runtime()
    removed = 0
    cutoff = rt.store.now() - rt.settings.retention_seconds
    for chunk_id, _died in rt.store.dead_letters(limit=100_000):
        if not rt.redis.exists(keys.chunk(chunk_id)):
            rt.redis.zrem(keys.dead_letters(), chunk_id)
            removed += 1
    stale = rt.store.active_before(cutoff, limit=100_000)
    missing = [c for c in stale if not rt.redis.exists(keys.batch(batch_id_of(c)))]
    rt.store.forget_active(missing)
    return removed + len(missing)
