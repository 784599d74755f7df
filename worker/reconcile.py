"""Did the API accept a send whose worker died before recording the answer?

SMTP2GO has no idempotency key, so a resend after a crash could deliver twice. Every
email carries its chunk id in the ``X-Outbox-Id`` header; before resending an ambiguous
chunk the worker looks for that header in ``activity/search``.

``activity/search`` allows 60 requests a minute, so look-ups are batched: one scan
lists the events since shortly before the attempt (``CLAIM_MARGIN``) with their headers
and stores ``chunk id -> email_id`` in Redis, plus the Redis times the scan started and
reached back to. Any ambiguous chunk whose attempt falls inside a finished scan is
answered from the stored map without another request (the in-flight chunks of one crash
share a scan); the scan itself takes a slot of the shared ``activity`` bucket, and a
task that finds no slot waits for one (re-queued, no attempt spent). A scan cut off at
``MAX_PAGES`` proves nothing about what it did not read: a chunk it did not find is
then *inconclusive*, never "not accepted".

SMS has no custom header: ``sms/view-sent`` is matched on destination and content
sent after the claim.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from redis.exceptions import LockError

from outbox.core.errors import ForbiddenError, RateLimitedError, SMTP2GOError, Throttled
from outbox.core.kinds import KINDS
from outbox.core.smtp2go.endpoints import ACTIVITY_SEARCH, SMS_VIEW_SENT
from outbox.core.smtp2go.models import ActivitySearch
from outbox.core.states import Kind
from outbox.core.text import epoch_seconds
from outbox.core.wire import OUTBOX_ID_HEADER
from outbox.worker import permissions
from outbox.worker.policy import SETTLE_SECONDS, Reconciliation

if TYPE_CHECKING:
    from outbox.worker.runtime import Runtime

__all__ = ["ThrottledLookup", "reconcile"]

logger = logging.getLogger(__name__)

#: How far back a scan looks at most (a lease is minutes old when it is found).
SCAN_WINDOW = timedelta(hours=1)
#: A scan reads from this long before the claim it is made for, so that chunks claimed a
#: little earlier (the other sends in flight at the same crash) are answered by it too.
#: Reading from near the claim, not a whole hour back, keeps a busy account's scan
#: within ``MAX_PAGES`` (the API lists events oldest first).
CLAIM_MARGIN = timedelta(seconds=60)
#: How far Redis's clock (claims) and the API's (events) may disagree.
CLOCK_SKEW = timedelta(seconds=5)
#: Events asked for per page: the Activity guide's most (the OpenAPI says 1,000; the
#: smaller is asked for, which either reading allows).
PAGE_SIZE = 100
#: Pages a scan reads at most: 5,000 events (a crash amid a 2,000-recipient send lists a
#: ``processed`` and a ``delivered`` for each). They fit in one minute's allowance of the
#: endpoint's 60 a minute, so a scan alone never waits for a slot: its pages go as fast
#: as the answers come, well inside ``SCAN_LOCK_SECONDS``.
MAX_PAGES = 50
#: How long a page waits for its slot of the ``activity`` limit before the scan gives
#: way (parks). The limit holds 60 in any minute, unpaced: a slot is free at once, or
#: the minute's are spent and the next frees only as the oldest leaves the window (up to
#: a minute on), which is better waited for parked than on a thread.
PAGE_SLOT_WAIT = 2.5
#: How long a chunk waits (parked) for another worker's scan before asking again.
SCAN_WAIT = 1.5
#: The most a scan may take before its lock lapses (its worker presumably died).
SCAN_LOCK_SECONDS = 120.0


class ThrottledLookup(Throttled):
    """No ``activity/search`` slot for a while: the task parks instead of waiting."""

    def __init__(self, wait: float) -> None:
        super().__init__("activity/search", wait)


def _scan(rt: Runtime, since: float) -> bool:
    """One batched look-up of the email events since ``since`` into the shared map;
    false when it was cut off at ``MAX_PAGES`` (more events than it may read).

    Each page takes a slot of the shared ``activity`` limit; a 429 cools every worker
    down, as on any endpoint (the API times the whole IP out)."""
    store = rt.store
    started = store.now()
    since = max(since, started - SCAN_WINDOW.total_seconds())
    start_date = datetime.fromtimestamp(since, UTC)
    found: dict[str, str] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        query = ActivitySearch(
            start_date=start_date.isoformat(),
            limit=PAGE_SIZE,
            continue_token=token,
            include_headers=True,
            custom_headers=[OUTBOX_ID_HEADER],
        )
        try:
            with store.limits.slot(
                rt.activity_limit,
                "scan",
                max_wait=PAGE_SLOT_WAIT,
                sleep=rt.sleep,
                refused=ThrottledLookup,
            ):
                result = rt.client.call(ACTIVITY_SEARCH, query)
        except RateLimitedError as err:
            hint = rt.policy.hint(err.retry_after, rt.settings.cooldown_seconds)
            rt.metrics.cooled(store.limits.cool_down(rt.send_limit, hint))
            raise
        for event in result.events:
            outbox_id = event.header(OUTBOX_ID_HEADER)
            if outbox_id and event.email_id:
                found[outbox_id] = str(event.email_id)
        token = result.continue_token
        if not token:
            break
    complete = not token
    store.scans.write(
        found, started=started, since=since, complete=complete, ttl=int(SCAN_WINDOW.total_seconds())
    )
    return complete


def _look_up(rt: Runtime, chunk_id: str) -> tuple[Reconciliation | None, float, float]:
    """The stored answer for ``chunk_id`` and the last finished scan's start and reach."""
    email_id, scanned, reach = rt.store.scans.read(chunk_id)
    found = Reconciliation(True, True, "activity/search", email_id) if email_id else None
    return found, scanned, reach


def _email(
    rt: Runtime, chunk_id: str, request: Mapping[str, Any], claimed_at: float, attempt_ended: float
) -> Reconciliation:
    """Answered from a stored scan that started once the attempt had settled and read
    from before its claim; else this worker scans (one at a time: the others wait
    parked for its answer, raising :class:`ThrottledLookup`)."""
    settled_at = attempt_ended + SETTLE_SECONDS
    found, scanned, reach = _look_up(rt, chunk_id)
    if found:
        return found
    if scanned >= settled_at and reach <= claimed_at - CLOCK_SKEW.total_seconds():
        return Reconciliation(False, True, "not in activity/search")
    early = settled_at - rt.store.now()
    if early > 0:  # an event of the attempt may not be listed yet
        raise ThrottledLookup(early)
    lock = rt.store.scans.exclusive(SCAN_LOCK_SECONDS)
    if lock is None:
        raise ThrottledLookup(SCAN_WAIT)
    try:
        complete = _scan(rt, claimed_at - CLAIM_MARGIN.total_seconds())
    finally:
        with contextlib.suppress(LockError):  # it lapsed: the scan outlived its lock
            lock.release()
    found, _, _ = _look_up(rt, chunk_id)
    if found:
        return found
    if not complete:
        return Reconciliation(
            False,
            False,
            f"activity/search lists over {MAX_PAGES * PAGE_SIZE:,} events since the claim",
        )
    # This worker's own complete scan, started after the attempt settled.
    return Reconciliation(False, True, "not in activity/search")


def _sms(
    rt: Runtime, chunk_id: str, request: Mapping[str, Any], claimed_at: float, attempt_ended: float
) -> Reconciliation:
    answer = rt.client.call(SMS_VIEW_SENT)
    sent = answer.data.get("messages") or answer.data.get("sms") or []
    wanted = set(request["destination"])
    ids: list[str] = []
    for message in sent if isinstance(sent, list) else []:
        if not isinstance(message, dict):
            continue
        when = epoch_seconds(
            message.get("timestamp") or message.get("sent_at") or message.get("date")
        )
        destination = message.get("destination_address") or message.get("destination")
        if (
            destination in wanted
            and message.get("content") == request["content"]
            and (when is None or when >= claimed_at - 5)
        ):
            ids.append(str(message.get("id") or message.get("message_id") or ""))
    if ids:
        return Reconciliation(True, True, "sms/view-sent", None, len(ids))
    return Reconciliation(False, True, "not in sms/view-sent")


#: How each look-up endpoint (a kind's ``look_up``, :mod:`.kinds`) finds an attempt.
_LOOK_UPS: dict[str, Callable[[Runtime, str, Mapping[str, Any], float, float], Reconciliation]] = {
    ACTIVITY_SEARCH.path: _email,
    SMS_VIEW_SENT.path: _sms,
}


def reconcile(rt: Runtime, kind: Kind, chunk_id: str, request: Mapping[str, Any]) -> Reconciliation:
    """Decide an ambiguous chunk; raises :class:`ThrottledLookup` to wait for a slot."""
    chunk = rt.store.batches.chunk(chunk_id)
    claimed_at = (chunk.claimed_at if chunk else None) or 0.0
    attempt_ended = (chunk.lease_until if chunk else None) or claimed_at
    look_up = KINDS[kind].look_up
    if look_up is None:
        return Reconciliation(False, False, f"a {kind} cannot be looked up")
    endpoint = look_up.path
    unknown = Reconciliation(
        False,
        False,
        f"the key may not call {endpoint}, so whether the API took it is unknown "
        "(give the key that permission in SMTP2GO to let lost answers be looked up)",
    )
    if not permissions.allowed(rt, endpoint):
        return unknown  # refused within the hour: asking again would only add an error
    try:
        return _LOOK_UPS[endpoint](rt, chunk_id, request, claimed_at, attempt_ended)
    except ForbiddenError as err:
        logger.warning("chunk %s: the key may not look the attempt up: %s", chunk_id, err)
        permissions.refused(rt, endpoint, err)
        return unknown
    except SMTP2GOError as err:
        logger.warning("chunk %s: reconciliation look-up failed: %s", chunk_id, err)
        return Reconciliation(False, False, f"look-up failed ({type(err).__name__})")
