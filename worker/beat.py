"""Scheduled jobs run by ``celery -A outbox.worker beat`` (schedule in ``celeryconfig``).

Jobs that call the API (the statistics snapshot, the suppression sync, the quota read)
respect the fleet's cool-down and an account hold (they do not run then), take a slot of
the shared rate limit for every request (the service counts every request of the
account's, so a read must not be the one over the limit while the workers send at it),
take a 429's cool-down for everyone as a send would, and when the API fails they log one
line and come back after a backoff (parked, like any wait) instead of a traceback every
run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from outbox.core.errors import SMTP2GOError
from outbox.core.queues import TaskName
from outbox.core.smtp2go.checks import address_key
from outbox.core.smtp2go.endpoints import (
    STATS_EMAIL_CYCLE,
    STATS_EMAIL_SUMMARY,
    SUPPRESSION_VIEW,
)
from outbox.core.smtp2go.models import SuppressionView
from outbox.core.states import State
from outbox.core.store import keys
from outbox.core.store.chunks import batch_id_of
from outbox.core.store.parked import Call
from outbox.worker import permissions
from outbox.worker.account_api import (
    SLOT_WAIT,
    Denied,
    NoSlot,
    api_call,
    held_for,
    lift_at_smtp2go,
    read_suppressions,
    row_reason,
)
from outbox.worker.celery_app import app
from outbox.worker.policy import backoff
from outbox.worker.publish import chunk_task, fire_callback, publish
from outbox.worker.runtime import Runtime, get_runtime
from outbox.worker.webhooks.tasks import rematch_parked

__all__ = [
    "Denied",
    "NoSlot",
    "api_call",
    "expire_records",
    "held_for",
    "lift_at_smtp2go",
    "read_suppressions",
    "rematch_events",
    "row_reason",
    "stats_snapshot",
    "sweep_stuck",
    "sync_quota",
    "sync_suppressions",
]

logger = logging.getLogger(__name__)

#: How long after its batch finished a callback still unmarked is taken as lost with its
#: worker (the finishing worker publishes it within milliseconds).
CALLBACK_GRACE = 60.0

#: Tries of an API job before it waits for its next scheduled run.
JOB_ATTEMPTS = 4


T = TypeVar("T")


def _api_job(name: TaskName, attempt: int, work: Callable[[Runtime], T]) -> T | None:
    """Run ``work`` unless the fleet is cooling down or held; on an API failure log one
    line and park another try (full-jitter backoff) until ``JOB_ATTEMPTS`` are spent."""
    rt = get_runtime()
    limits = rt.store.limits
    cooling = limits.cooling_for()
    if cooling > 0 or limits.hold_reason():
        reason = f"cooling down {cooling:.0f}s" if cooling > 0 else "sending is held"
        logger.info("%s skipped: %s (the next run tries again)", name, reason)
        return None
    try:
        return work(rt)
    except Denied as denied:
        logger.debug("%s is off: the key may not call %s", name, denied)
        return None
    except NoSlot as busy:  # costs no attempt: nothing was asked of the API
        logger.info("%s waits %.1fs for a slot of the rate limit", name, busy.wait)
        rt.store.parked.park(Call(name, args=(attempt,)), rt.store.now() + busy.wait)
        return None
    except SMTP2GOError as err:  # a 429 has cooled the fleet down (api_call)
        if not err.retryable or attempt >= JOB_ATTEMPTS:
            logger.warning("%s failed: %s (the next scheduled run tries again)", name, err)
            return None
        delay = max(backoff(attempt, 5.0, 300.0), limits.cooling_for())
        logger.warning("%s failed: %s; trying again in %.0fs", name, err, delay)
        rt.store.parked.park(Call(name, args=(attempt + 1,)), rt.store.now() + delay)
        return None


def _stats(rt: Runtime) -> dict[str, Any]:
    summary = api_call(rt, STATS_EMAIL_SUMMARY)
    snapshot = {"taken_at": rt.store.now(), "data": summary.model_dump(mode="json")}
    rt.store.account.save_stats(snapshot)
    return snapshot


@app.task(name=TaskName.STATS_SNAPSHOT.value)
def stats_snapshot(attempt: int = 1) -> dict[str, Any] | None:
    """Keep the latest ``stats/email_summary`` in Redis for dashboards and ``outbox``."""
    return _api_job(TaskName.STATS_SNAPSHOT, attempt, _stats)


def _suppressions(rt: Runtime, max_pages: int = 50) -> int:
    # Read before the first page: a removal after it may not be seen by the pages.
    since = rt.store.now()
    rows, _ = read_suppressions(
        lambda query: api_call(rt, SUPPRESSION_VIEW, query), SuppressionView(), max_pages
    )
    addresses = [address_key(str(row["email_address"])) for row in rows]
    rt.store.suppressions.add_synced(addresses, since)
    return len(addresses)


@app.task(name=TaskName.SYNC_SUPPRESSIONS.value)
def sync_suppressions(attempt: int = 1) -> int | None:
    """Pull the account's suppression list into the set producers consult (an address
    lifted while the list was being read is left out: ``add_synced``)."""
    return _api_job(TaskName.SYNC_SUPPRESSIONS, attempt, _suppressions)


def _cycle_end(value: Any) -> float | None:
    """``cycle_end`` as epoch seconds: the API writes ``'2022-11-30 00:00:00+00:00'``
    (its examples; the schema's has no offset, read as UTC)."""
    try:
        ends = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (ends if ends.tzinfo else ends.replace(tzinfo=UTC)).timestamp()


#: How much of the month's allowance each plan may send, in percent: a free plan is
#: refused at 100 %, a paid one goes into overage (charged) up to 300 % and is refused
#: there (SMTP2GO support, "Quota Usage Notifications").
PLAN_CEILING: dict[str, int] = {"free": 100, "paid": 300}


def room_left(plan: str, used: int, remaining: int, most: int) -> int:
    """What the plan still lets the account send this cycle: the API's own
    ``cycle_remaining`` up to the allowance, and past it what overage leaves (the API
    does not say whether its ``cycle_remaining`` goes below zero, so it is not read
    there)."""
    ceiling = PLAN_CEILING[plan]
    if ceiling == 100:
        return remaining
    return max(0, most * ceiling // 100 - used)


def _quota(rt: Runtime) -> dict[str, Any]:
    data = api_call(rt, STATS_EMAIL_CYCLE).data
    now = rt.store.now()
    counts = ("cycle_used", "cycle_remaining", "cycle_max")
    used, remaining, most = (int(data.get(k) or 0) for k in counts)
    plan = rt.settings.quota_plan
    left = room_left(plan, used, remaining, most)
    seen: dict[str, Any] = {
        "read_at": now,
        "cycle_start": data.get("cycle_start"),
        "cycle_end": data.get("cycle_end"),
        "cycle_used": used,
        "cycle_remaining": remaining,
        "cycle_max": most,
        "plan": plan,
        "left": left,
    }
    rt.store.account.save_quota(seen)
    ends = _cycle_end(seen["cycle_end"])
    # No allowance reported (or a cycle already over): nothing is held back for one.
    applies = most > 0 and ends is not None and ends > now
    rt.store.account.set_quota_left(left, until=ends if applies else None)
    seen["released"] = _release_throttled(rt, left if applies else None)
    if applies and left <= 0:
        more = (
            "; a paid plan may send on to 300 % (overage, charged): OUTBOX_QUOTA_PLAN=paid"
            if plan == "free"
            else ""
        )
        logger.warning(
            "the monthly quota is used up for a %s plan (%d of %d): emails wait `throttled` "
            "until %s%s",
            plan,
            used,
            most,
            seen["cycle_end"],
            more,
        )
    return seen


def _release_throttled(rt: Runtime, left: int | None) -> int:
    """Publish again the throttled chunks the allowance now covers, longest waiting
    first (all of them when no quota applies); their claims take from it."""
    batches = rt.store.batches
    tasks, gone = [], []
    room = left
    for chunk_id in rt.store.account.throttled():
        chunk = batches.chunk(chunk_id)
        task = chunk_task(batches, chunk_id) if chunk is not None else None
        if chunk is None or task is None:
            gone.append(chunk_id)
            continue
        if room is not None:
            if chunk.n_recipients > room:
                break
            room -= chunk.n_recipients
        tasks.append(task)
    rt.store.account.forget_throttled(gone)
    if tasks:
        logger.info("the monthly quota has room: %d throttled chunk(s) go again", len(tasks))
        return publish(tasks, store=rt.store)
    return 0


def _permissions(rt: Runtime) -> list[str] | None:
    with rt.store.limits.slot(
        rt.send_limit, "job", max_wait=SLOT_WAIT, sleep=rt.sleep, refused=NoSlot
    ):
        return permissions.learn(rt)


@app.task(name=TaskName.CHECK_PERMISSIONS.value)
def check_permissions(attempt: int = 1) -> list[str] | None:
    """Read what the key may call (``api_keys/permissions``, a read that sends nothing):
    the endpoints of the features that are off. Run when a worker starts and hourly, so
    a permission added in SMTP2GO turns its feature on within the hour."""
    return _api_job(TaskName.CHECK_PERMISSIONS, attempt, _permissions)


@app.task(name=TaskName.SYNC_QUOTA.value)
def sync_quota(attempt: int = 1) -> dict[str, Any] | None:
    """Read the month's allowance (``stats/email_cycle``): emails that would overdraw
    it wait ``throttled`` instead of failing; a new cycle or a raised allowance lets
    them go."""
    return _api_job(TaskName.SYNC_QUOTA, attempt, _quota)


@app.task(name=TaskName.SWEEP_STUCK.value)
def sweep_stuck() -> int:
    """Publish again every chunk that has not moved for ``OUTBOX_STUCK_AFTER`` seconds.

    The last resort for a task message lost before any worker claimed it (a producer
    that died between recording and publishing, a worker killed between taking a
    message and claiming its chunk): a chunk a worker *held* comes back sooner, when its
    lease runs out. A completion callback whose worker died before publishing it is
    published here too, and a chunk a resume that stopped half-way left paused. Chunks
    waiting for a ``send_at``, a parked retry, the quota or a resume are left alone. A
    second copy of a task whose first is still queued is harmless: the claim dedupes it.
    """
    rt = get_runtime()
    batches = rt.store.batches
    now = rt.store.now()
    republished = 0
    gone = []
    tasks = []
    for chunk_id in batches.active_before(now - rt.settings.stuck_after_seconds):
        chunk = batches.chunk(chunk_id)
        if chunk is None:
            gone.append(chunk_id)
            continue
        if (chunk.due_at or 0) > now or chunk.state is State.THROTTLED:
            continue  # a parked call, or the next quota read, brings it back
        batch = batches.stored_batch(chunk.batch) if chunk.state is State.PAUSED else None
        if batch is not None and batch.paused_at:
            continue  # resume brings it back (a paused chunk of a resumed send goes on)
        task = chunk_task(batches, chunk_id)
        if task is None:
            gone.append(chunk_id)
            continue
        tasks.append(task)
        batches.touch_active(chunk_id, now)
        logger.warning("chunk %s stuck in %s; published again", chunk_id, chunk.state.value)
    if tasks:
        republished = publish(tasks, store=rt.store)
    batches.forget_active(gone)
    for batch_id in batches.callbacks_due(now - CALLBACK_GRACE):
        logger.warning("batch %s: completion callback never published; publishing it", batch_id)
        fire_callback(rt.store, batch_id)
    return republished


@app.task(name=TaskName.REMATCH_EVENTS.value)
def rematch_events() -> int:
    """Put parked webhook events on the records of sends indexed since they arrived."""
    return rematch_parked(get_runtime())


#: A send still staged this long after it began was left by a producer that died.
ABANDONED_AFTER = 3600.0


@app.task(name=TaskName.EXPIRE_RECORDS.value)
def expire_records() -> int:
    """Drop index entries whose records expired (the records themselves carry TTLs), and
    sends whose producer died while writing them."""
    rt = get_runtime()
    batches = rt.store.batches
    letters = [c for c, _ in batches.dead_letters(100_000) + batches.failed_letters(100_000)]
    there = batches.existing(keys.chunk, letters)
    gone = [c for c, ok in zip(letters, there, strict=True) if not ok]
    batches.forget_letters(gone)
    cutoff = rt.store.now() - rt.settings.retention_seconds
    stale = batches.active_before(cutoff, limit=100_000)
    batch_ids = [batch_id_of(c) for c in stale]
    there = batches.existing(keys.batch, batch_ids)
    missing = [c for c, ok in zip(stale, there, strict=True) if not ok]
    batches.forget_active(missing)
    # a send staged in pages whose producer died before committing it: never sendable
    abandoned = batches.abandoned(rt.store.now() - ABANDONED_AFTER)
    for batch_id in abandoned:
        record = batches.stored_batch(batch_id)
        chunks = record.chunks if record else 0
        logger.warning(
            "send %s was being recorded when its producer stopped (%d chunks); discarded, "
            "nothing of it was sent",
            batch_id,
            chunks,
        )
        batches.discard(batch_id, chunks)
    return len(gone) + len(missing) + len(abandoned)
