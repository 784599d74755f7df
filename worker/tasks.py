"""The send tasks: one per kind, named stably (``outbox.send_email``, ...).

Each task runs one attempt of one chunk:

1. validate the payload with the same models the producer used (a payload that no
   longer validates is *poison*: dead at once, with the reason, never retried);
2. claim the chunk and a rate-limit slot in one script call (``worker.store``):
   a chunk already final is skipped, a live claim elsewhere is waited for, a claim left
   by a dead worker is *ambiguous* and reconciled before anything is resent;
3. make the request (``worker.smtp2go``) and record the outcome before the task
   returns, which is when Celery acknowledges the message (``task_acks_late``);
4. on a retryable error, schedule the next attempt by ``worker.retry``'s rules; an
   error after the request may have reached the API (``TransportError.ambiguous``: a
   read timeout, a dropped connection) is never retried blind, but reconciled first,
   like a dead worker's claim.

Waits (rate limit, cool-down, a busy claim, a retry delay) go back to the broker as a
countdown when short, or into Redis's parked set when longer than the broker may hold
an unacknowledged message (see ``celeryconfig.broker_transport_options``).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Retry
from pydantic import ValidationError

from outbox.errors import RateLimitedError, SMTP2GOError, TransportError
from outbox.worker import keys
from outbox.worker.app import app
from outbox.worker.reconcile import OUTBOX_ID_HEADER, SETTLE_SECONDS, ThrottledLookup, reconcile
from outbox.worker.records import load_record
from outbox.worker.retry import Action, Decision
from outbox.worker.runtime import Runtime, get_runtime
from outbox.worker.smtp2go.models import CustomHeader, EmailSend, MimeSend, SmsSend, field_errors_of
from outbox.worker.states import Kind, State
from outbox.worker.store import Claim, batch_id_of
from outbox.worker.unavailable import hand_back_when_unavailable

__all__ = ["OUTBOX_ID_HEADER", "deliver", "send_email", "send_mime", "send_sms", "send_template"]

logger = logging.getLogger(__name__)


#: Longest rate-limit reservation a task sleeps through in its thread; longer waits
#: are handed back to the broker so the thread serves other chunks.
MAX_SLEEP = 1.0

#: How far ahead a task may reserve a rate-limit slot and come back for it. Reserving
#: keeps the fleet at the limit with one re-queue per task instead of every refused
#: task retrying at the same instant; beyond it, a task is refused and waits.
RESERVE_HORIZON = 5.0

#: A task that slept at least this long for its slot looks at the shared cool-down
#: again before sending (one GET): a 429 may have arrived meanwhile.
RECHECK_AFTER = 0.02

#: A task that reserved a slot is re-queued to arrive this much early, then sleeps.
RESERVE_LEAD = 0.3

#: Margin of a claim's lease beyond the client timeout.
LEASE_MARGIN = 10.0


def _validate(kind: Kind, payload: dict[str, Any]) -> EmailSend | MimeSend | SmsSend:
    if kind is Kind.MIME:
        return MimeSend.model_validate(payload)
    if kind is Kind.SMS:
        return SmsSend.model_validate(payload)
    return EmailSend.model_validate(payload)


def _with_outbox_id(request: EmailSend | MimeSend | SmsSend, chunk_id: str) -> Any:
    """The request as sent: tagged with the chunk id so it can be found again."""
    if isinstance(request, EmailSend):
        headers = [h for h in request.custom_headers if h.header.lower() != "x-outbox-id"]
        headers.append(CustomHeader(header=OUTBOX_ID_HEADER, value=chunk_id))
        return request.model_copy(update={"custom_headers": headers})
    if isinstance(request, MimeSend):
        if request.mime_email.lower().startswith("x-outbox-id:"):
            return request
        mime = f"{OUTBOX_ID_HEADER}: {chunk_id}\r\n{request.mime_email}"
        return request.model_copy(update={"mime_email": mime})
    return request


def _send(rt: Runtime, request: Any) -> tuple[dict[str, Any], str | None, int, int]:
    """One request; ``(fields to record, email_id, succeeded, failed recipients)``."""
    client = rt.client
    if isinstance(request, SmsSend):
        sms = client.sms_send(request)
        ids = {m.destination: m.message_id for m in sms.messages if m.message_id}
        refused = [m.destination for m in sms.messages if m.status in {"failed", "rejected"}]
        sent = len(request.destination) - len(refused)
        fields = {
            "request_id": sms.request_id or "",
            "message_ids": ids,
            "failures": refused,
            # The chunk's counts, as an email's are recorded (the batch counters add them).
            "succeeded": str(sent),
            "failed": str(len(refused)),
        }
        return fields, None, sent, len(refused)
    result = (
        client.send_mime(request) if isinstance(request, MimeSend) else client.send_email(request)
    )
    fields = {
        "request_id": result.request_id or "",
        "succeeded": str(result.succeeded),
        "failed": str(result.failed),
        "failures": list(result.failures),
    }
    return fields, result.email_id, result.succeeded, result.failed


@hand_back_when_unavailable(lambda task, kind, chunk_id, *_: f"chunk {chunk_id}")
def deliver(
    task: Task,
    kind: Kind,
    chunk_id: str,
    payload: dict[str, Any],
    reserved_at: float | None = None,
) -> str:
    """One attempt at one chunk; returns the chunk's state afterwards.

    ``reserved_at`` is the Redis time of a rate-limit slot an earlier run of this task
    reserved; the task then claims without taking another slot.

    When Redis or the broker is unreachable the message goes back to the broker
    (``Reject(requeue=True)``; if even that fails it stays unacknowledged and returns
    after the visibility timeout), never acknowledged as failed: a chunk claimed, or
    sent but not yet recorded, would otherwise stay ``sending`` until the stuck sweep.
    Its next run finds the claim and settles it (busy, then ambiguous and looked up).
    """
    rt = get_runtime()
    batch_id = batch_id_of(chunk_id)
    try:
        request = _validate(kind, payload)
    except ValidationError as exc:
        errors = field_errors_of(exc)
        logger.error("chunk %s: payload does not validate (%s); dead", chunk_id, errors)
        error = {
            "type": "InvalidPayload",
            "message": "the task's payload does not validate: " + ", ".join(errors),
            "field_errors": errors,
        }
        # No record to mark (expired, never created): still leave a dead letter.
        if rt.store.bury_orphan(chunk_id, kind=kind.value, error=error):
            return State.DEAD.value
        return _give_up(rt, chunk_id, State.DEAD, error)

    worker = f"{task.request.hostname or 'local'}"
    lease = rt.settings.smtp2go_timeout + LEASE_MARGIN
    claim = rt.store.claim(
        chunk_id,
        batch_id,
        worker=worker,
        lease=lease,
        limiter=rt.send_limiter,
        max_wait=MAX_SLEEP,
        horizon=RESERVE_HORIZON,
        reserved_at=reserved_at,
    )
    if claim.outcome == "ambiguous":
        try:
            resolved = _resolve_ambiguous(rt, kind, chunk_id, request, claim.attempt, worker, lease)
        except ThrottledLookup as wait:
            _requeue(task, rt, chunk_id, payload, wait.wait + random.uniform(0, 1))
        if resolved is None:
            return "resolved"
        claim = resolved
    if claim.outcome == "final":
        return claim.previous
    if claim.outcome == "missing":
        logger.error("chunk %s has no record (expired or never created); not sent", chunk_id)
        return "missing"
    if claim.outcome == "reserved":
        _requeue(
            task,
            rt,
            chunk_id,
            payload,
            max(0.0, claim.wait - RESERVE_LEAD),
            reserved_at=claim.now + claim.wait,
        )
    if claim.outcome in {"busy", "throttled", "ambiguous"}:
        _requeue(task, rt, chunk_id, payload, _spread(claim.wait))
    if claim.wait > 0:
        time.sleep(claim.wait)
    if claim.wait >= RECHECK_AFTER:
        # A 429 may have arrived while this thread slept through its slot: the whole
        # fleet holds off, this send included.
        cooling = rt.send_limiter.cooling_after(claim.now + claim.wait)
        if cooling > 0 and rt.store.give_back(
            chunk_id, batch_id, claim, "slot given back: cool-down"
        ):
            _requeue(task, rt, chunk_id, payload, _spread(cooling))

    try:
        fields, email_id, succeeded, failed = _send(rt, _with_outbox_id(request, chunk_id))
    except SMTP2GOError as err:
        return _after_error(task, rt, chunk_id, payload, err, claim.attempt)
    finished = rt.store.finish(
        chunk_id,
        batch_id,
        State.SENT,
        fields=fields,
        log={"attempt": claim.attempt, "email_id": email_id},
        email_id=email_id,
        succeeded=succeeded,
        failed=failed,
    )
    _after_finish(rt, batch_id, finished.outcome)
    return State.SENT.value


def _resolve_ambiguous(
    rt: Runtime, kind: Kind, chunk_id: str, request: Any, attempt: int, worker: str, lease: float
) -> Claim | None:
    """A previous claimant died mid-request: find out whether the API took it.

    Returns the new claim when the chunk is to be sent again, ``None`` when settled.
    """
    batch_id = batch_id_of(chunk_id)
    outcome = reconcile(rt, kind, chunk_id, request)
    if outcome.found:
        note = f"ambiguous attempt {attempt}: accepted (found by {outcome.how}); not resent"
        raw = rt.store.get_chunk_raw(chunk_id)
        succeeded = outcome.recipients or int(raw.get("n_recipients", 0))
        finished = rt.store.finish(
            chunk_id,
            batch_id,
            State.SENT,
            # The chunk's own count too, as a normal send records it: the batch counter
            # and the chunk must agree.
            fields={"ambiguous": note, "succeeded": str(succeeded)},
            log={"note": note},
            email_id=outcome.email_id,
            succeeded=succeeded,
        )
        _after_finish(rt, batch_id, finished.outcome)
        return None
    if not outcome.conclusive and rt.settings.ambiguous_policy == "hold":
        note = f"ambiguous attempt {attempt}: {outcome.how}; held for an operator"
        _give_up(rt, chunk_id, State.DEAD, {"type": "Ambiguous", "message": note}, note=note)
        return None
    note = f"ambiguous attempt {attempt}: {outcome.how}; resent"
    return rt.store.claim(
        chunk_id,
        batch_id,
        worker=worker,
        lease=lease,
        limiter=rt.send_limiter,
        max_wait=MAX_SLEEP,
        takeover=True,
        note=note,
    )


def _after_error(
    task: Task, rt: Runtime, chunk_id: str, payload: dict[str, Any], err: SMTP2GOError, attempt: int
) -> str:
    batch_id = batch_id_of(chunk_id)
    hint: float | None = None
    if isinstance(err, RateLimitedError):
        if rt.settings.shared_cooldown:
            # Every worker holds off, not just this one: the API's IP timeout lasts a minute.
            hint = rt.send_limiter.cool_down(err.retry_after or rt.settings.cooldown_seconds)
        else:
            hint = err.retry_after  # only this task waits (OUTBOX_SHARED_COOLDOWN=0)
    decision = rt.policy.decide(err, attempt, hint=hint)
    error = err.to_dict()
    if isinstance(err, TransportError) and err.ambiguous:
        # The request may have reached the API (a read timeout, a dropped connection):
        # a blind retry could send twice. Settle it the way a dead worker's claim is.
        return _unknown_outcome(task, rt, chunk_id, payload, error, attempt, decision)
    if decision.action is Action.RETRY:
        rt.store.finish(
            chunk_id,
            batch_id,
            State.RETRYING,
            fields={"last_error": error},
            log={"attempt": attempt, "error": error, "retry_in": round(decision.delay, 3)},
            expect=State.SENDING,
        )
        _requeue(task, rt, chunk_id, payload, decision.delay)
    state = State.FAILED if decision.action is Action.FAIL else State.DEAD
    return _give_up(rt, chunk_id, state, error, attempt=attempt)


def _unknown_outcome(
    task: Task,
    rt: Runtime,
    chunk_id: str,
    payload: dict[str, Any],
    error: dict[str, Any],
    attempt: int,
    decision: Decision,
) -> str:
    """An attempt whose request may have been accepted: never resend it blind.

    With attempts left, the claim is left as a dead worker leaves it (still ``sending``,
    its lease ended now) and the task comes back at least ``SETTLE_SECONDS`` later, so
    the next run finds an expired claim and reconciles through ``activity/search``
    (``_resolve_ambiguous``) before anything is sent again. With none left, the chunk is
    dead with a note that the API may have it, for an operator to check before a replay.
    """
    note = f"ambiguous attempt {attempt}: {error['type']} after the request was sent"
    if decision.action is not Action.RETRY:
        note += "; outcome unknown and attempts exhausted: check the activity before a replay"
        return _give_up(rt, chunk_id, State.DEAD, error, attempt=attempt, note=note)
    note += "; looked up before any resend"
    rt.store.finish(
        chunk_id,
        batch_id_of(chunk_id),
        State.SENDING,
        fields={"last_error": error, "ambiguous": note, "lease_until": f"{rt.store.now():.6f}"},
        log={"attempt": attempt, "error": error, "note": note},
        expect=State.SENDING,
    )
    _requeue(task, rt, chunk_id, payload, max(decision.delay, SETTLE_SECONDS))


def _give_up(
    rt: Runtime,
    chunk_id: str,
    state: State,
    error: dict[str, Any],
    *,
    attempt: int | None = None,
    note: str | None = None,
) -> str:
    batch_id = batch_id_of(chunk_id)
    raw = rt.store.get_chunk_raw(chunk_id)
    n = int(raw.get("n_recipients", 0)) if raw else 0
    log: dict[str, Any] = {"error": error}
    if attempt is not None:
        log["attempt"] = attempt
    if note:
        log["note"] = note
    fields: dict[str, Any] = {"last_error": error}
    if note:
        fields["ambiguous"] = note
    finished = rt.store.finish(chunk_id, batch_id, state, fields=fields, log=log, failed=n)
    _after_finish(rt, batch_id, finished.outcome)
    return state.value


def _spread(wait: float) -> float:
    """``wait`` plus jitter: many tasks refused at once must not all come back at once."""
    return wait + random.uniform(0, 0.05 + wait / 4)


def _requeue(
    task: Task,
    rt: Runtime,
    chunk_id: str,
    payload: dict[str, Any],
    delay: float,
    *,
    reserved_at: float | None = None,
) -> NoReturn:
    """Hand the chunk back for ``delay`` seconds without spending an attempt."""
    if delay <= rt.settings.park_after:
        kwargs = {"reserved_at": reserved_at} if reserved_at is not None else {}
        raise task.retry(
            args=[chunk_id, payload], kwargs=kwargs, countdown=max(delay, 0.0), max_retries=None
        )
    rt.store.park({"task": task.name, "chunk": chunk_id}, rt.store.now() + delay)
    raise Retry(f"parked for {delay:.1f}s", when=delay)


def _after_finish(rt: Runtime, batch_id: str, outcome: str) -> None:
    """Fire the batch's completion callback, exactly once (the script that made the last
    chunk final answered ``batch_done``)."""
    if outcome != "batch_done":
        return
    # Most batches have no callback (every single send finishes its own batch): one
    # cheap check instead of loading the whole record.
    if not rt.redis.hexists(keys.batch(batch_id), "callback"):
        return
    record = load_record(rt.store, batch_id)
    if record is None or record.callback is None:
        return
    app.signature(record.callback).apply_async(args=[record.model_dump(mode="json")])
    rt.redis.hset(keys.batch(batch_id), "callback_sent_at", str(rt.store.now()))


@app.task(bind=True, name="outbox.send_email", max_retries=None)
def send_email(
    self: Task, chunk_id: str, payload: dict[str, Any], reserved_at: float | None = None
) -> str:
    return deliver(self, Kind.EMAIL, chunk_id, payload, reserved_at)


@app.task(bind=True, name="outbox.send_template", max_retries=None)
def send_template(
    self: Task, chunk_id: str, payload: dict[str, Any], reserved_at: float | None = None
) -> str:
    return deliver(self, Kind.TEMPLATE, chunk_id, payload, reserved_at)


@app.task(bind=True, name="outbox.send_mime", max_retries=None)
def send_mime(
    self: Task, chunk_id: str, payload: dict[str, Any], reserved_at: float | None = None
) -> str:
    return deliver(self, Kind.MIME, chunk_id, payload, reserved_at)


@app.task(bind=True, name="outbox.send_sms", max_retries=None)
def send_sms(
    self: Task, chunk_id: str, payload: dict[str, Any], reserved_at: float | None = None
) -> str:
    return deliver(self, Kind.SMS, chunk_id, payload, reserved_at)
