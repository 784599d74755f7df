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

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from outbox.errors import SMTP2GOError
from outbox.worker import keys
from outbox.worker.smtp2go.models import ActivitySearch, SmsSend
from outbox.worker.states import Kind

if TYPE_CHECKING:
    from outbox.worker.runtime import Runtime

__all__ = ["Reconciliation", "ThrottledLookup", "reconcile"]

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
#: Pages of 1,000 events a scan reads at most.
MAX_PAGES = 5
#: Events take a moment to show in the activity log after a send is accepted.
SETTLE_SECONDS = 2.0

#: Custom header carrying the chunk id on every email (set by ``worker.tasks``).
OUTBOX_ID_HEADER = "X-Outbox-Id"

FOUND_KEY = keys.reconcile_found()
SCANNED_KEY = keys.reconcile_scanned("at")
#: How far back the last finished scan read (Redis time).
SCANNED_FROM_KEY = keys.reconcile_scanned("from")


class ThrottledLookup(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"activity/search slot in {wait:.1f}s")
        self.wait = wait


@dataclass(frozen=True, slots=True)
class Reconciliation:
    #: The API accepted the earlier attempt.
    found: bool
    #: The look-up worked: not found means not accepted, so a resend is safe.
    conclusive: bool
    #: How it was decided, for the record.
    how: str
    email_id: str | None = None
    recipients: int = 0


def _scan(rt: Runtime, since: float) -> bool:
    """One batched look-up of the email events since ``since`` into the shared map;
    false when it was cut off at ``MAX_PAGES`` (more events than it may read)."""
    acquisition = rt.activity_limiter.try_acquire(max_wait=1.0)
    if not acquisition.granted:
        raise ThrottledLookup(acquisition.wait)
    started = rt.store.now()
    since = max(since, started - SCAN_WINDOW.total_seconds())
    start_date = datetime.fromtimestamp(since, UTC)
    found: dict[str, str] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        query = ActivitySearch(
            start_date=start_date.isoformat(),
            limit=1000,
            continue_token=token,
            include_headers=True,
            custom_headers=[OUTBOX_ID_HEADER],
        )
        result = rt.client.activity_search(query)
        for event in result.events:
            outbox_id = event.header(OUTBOX_ID_HEADER)
            if outbox_id and event.email_id:
                found[outbox_id] = str(event.email_id)
        token = result.continue_token
        if not token:
            break
    complete = not token
    ttl = int(SCAN_WINDOW.total_seconds())
    pipe = rt.redis.pipeline()
    if found:
        pipe.hset(FOUND_KEY, mapping=found)
    pipe.expire(FOUND_KEY, ttl)
    if complete:
        # Both in one transaction: a reader never pairs one scan's start with another's reach.
        pipe.set(SCANNED_KEY, f"{started:.6f}", ex=ttl)
        pipe.set(SCANNED_FROM_KEY, f"{since:.6f}", ex=ttl)
    pipe.execute()
    return complete


def _look_up(rt: Runtime, chunk_id: str) -> tuple[Reconciliation | None, float, float]:
    """The stored answer for ``chunk_id`` and the last finished scan's start and reach,
    read together. A scan writes its finds and its marks in one transaction; read apart,
    a scan landing between the two reads (another worker's, for the chunks of the same
    crash) would show as finished without this chunk's find: a resend of a sent message."""
    pipe = rt.redis.pipeline(transaction=True)
    pipe.hget(FOUND_KEY, chunk_id)
    pipe.mget(SCANNED_KEY, SCANNED_FROM_KEY)
    email_id, (scanned, reach) = pipe.execute()
    found = None
    if email_id:
        text = email_id.decode() if isinstance(email_id, bytes) else str(email_id)
        found = Reconciliation(True, True, "activity/search", text)
    return found, float(scanned or 0), float(reach or 0)


def _email(rt: Runtime, chunk_id: str, claimed_at: float, attempt_ended: float) -> Reconciliation:
    for _ in range(2):
        found, scanned, reach = _look_up(rt, chunk_id)
        if found:
            return found
        after = scanned >= attempt_ended + SETTLE_SECONDS
        if after and reach <= claimed_at - CLOCK_SKEW.total_seconds():
            return Reconciliation(False, True, "not in activity/search")
        if not _scan(rt, claimed_at - CLAIM_MARGIN.total_seconds()):
            return _look_up(rt, chunk_id)[0] or Reconciliation(
                False,
                False,
                f"activity/search lists over {MAX_PAGES * 1000} events since the claim",
            )
    # Two complete scans, the last one this worker's own (it started after the attempt
    # settled): whatever they found is stored.
    found, _, _ = _look_up(rt, chunk_id)
    return found or Reconciliation(False, True, "not in activity/search")


def _sms(rt: Runtime, request: SmsSend, claimed_at: float) -> Reconciliation:
    answer = rt.client.sms_view_sent()
    sent = answer.data.get("messages") or answer.data.get("sms") or []
    wanted = set(request.destination)
    ids: list[str] = []
    for message in sent if isinstance(sent, list) else []:
        if not isinstance(message, dict):
            continue
        when = _epoch(message.get("timestamp") or message.get("sent_at") or message.get("date"))
        destination = message.get("destination_address") or message.get("destination")
        if (
            destination in wanted
            and message.get("content") == request.content
            and (when is None or when >= claimed_at - 5)
        ):
            ids.append(str(message.get("id") or message.get("message_id") or ""))
    if ids:
        return Reconciliation(True, True, "sms/view-sent", None, len(ids))
    return Reconciliation(False, True, "not in sms/view-sent")


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def reconcile(rt: Runtime, kind: Kind, chunk_id: str, request: Any) -> Reconciliation:
    """Decide an ambiguous chunk; raises :class:`ThrottledLookup` to wait for a slot."""
    raw = rt.store.get_chunk_raw(chunk_id)
    claimed_at = float(raw.get("claimed_at") or 0)
    attempt_ended = float(raw.get("lease_until") or claimed_at)
    try:
        if kind is Kind.SMS:
            return _sms(rt, request, claimed_at)
        return _email(rt, chunk_id, claimed_at, attempt_ended)
    except SMTP2GOError as err:
        logger.warning("chunk %s: reconciliation look-up failed: %s", chunk_id, err)
        return Reconciliation(False, False, f"look-up failed ({type(err).__name__})")
