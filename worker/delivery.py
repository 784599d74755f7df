"""One attempt at one chunk: ask the policy, then act.

The decisions are the pure functions of :mod:`outbox.worker.policy`, tested as tables:
what the claim means (send now or at the slot's time, wait in line, park, leave it to
another worker, look an unknown attempt up), what the API's answer means (sent, failed,
retry, hold the account, an unknown fate) and what a look-up found. :class:`Delivery`
carries them out against Redis, the broker and the API, with the clock and the waits of
its :class:`~outbox.worker.runtime.Runtime`. The payload is sent as the producer wrote it,
after a cheap check that it is one, in a format this worker reads
(:mod:`outbox.core.wire`).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from typing import Any

from outbox.core import tracing
from outbox.core.errors import SMTP2GOError
from outbox.core.kinds import KINDS
from outbox.core.smtp2go.models import SendResult, SmsSendResult
from outbox.core.states import Kind, State
from outbox.core.store import codec
from outbox.core.store.batches import Claim, ClaimOutcome, Finish, FinishOutcome
from outbox.core.store.chunks import batch_id_of
from outbox.core.store.limits import Grant, Wake
from outbox.core.store.parked import Call
from outbox.core.wire import (
    PoisonPayload,
    UnknownPayloadVersion,
    check,
    check_version,
    tagged,
)
from outbox.worker.policy import HOLD_RECHECK, Action, decide, judge, settle
from outbox.worker.publish import fire_callback
from outbox.worker.reconcile import ThrottledLookup, reconcile
from outbox.worker.runtime import Runtime

__all__ = ["Delivery"]

#: Numbers this process's waits: with the worker's name and the pid, a token no other
#: wait for the same chunk can have (``uuid4`` read the kernel's random pool per send).
_WAITS = itertools.count()

logger = logging.getLogger(__name__)

#: Waits given back to the relay are spread over this much more, so a crowd refused at
#: once does not come back at once.
SPREAD = 0.25


class Stop(Exception):
    """The worker is stopping: the task goes back to the broker untouched."""


class Delivery:
    """Runs one attempt of one chunk (a task's body)."""

    def __init__(self, rt: Runtime, kind: Kind, chunk_id: str, worker: str) -> None:
        self.rt = rt
        self.kind = kind
        self.spec = KINDS[kind]
        self.chunk_id = chunk_id
        self.worker = worker
        self.limit = rt.send_limit
        self.batches = rt.store.batches
        self.call = Call(self.spec.task, chunk=chunk_id)
        #: When the last claim was made (``rt.monotonic``): a slot's wait counts from it.
        self.claimed_at = 0.0
        #: The chunk's lane and tenant, as its claim read them (metrics' labels).
        self.lane, self.tenant = "transactional", ""
        #: A bulk chunk the finish handed to this thread to send next ('' for none).
        self.handed = ""
        #: The chunk's state before the last claim (what a slot given back returns it to).
        self.previous: State | None = None
        #: This run's span (``None`` when nothing is traced).
        self.span: Any = None
        #: Why the task cannot be sent (a payload this worker does not read): the error
        #: its chunk ends dead with, once the claim makes the chunk this worker's. A
        #: chunk another worker holds (a newer one, mid-upgrade) is left to it.
        self.refused: dict[str, Any] | None = None

    def run(self, payload: dict[str, Any], *, version: object = None) -> str:
        """The chunk's state afterwards (or what happened to the task), in a span of the
        send's trace when tracing is on (:mod:`outbox.core.tracing`). ``version`` is
        the payload format's, from the message's header (``None``: version 1)."""
        if not tracing.active():
            return self._run(payload, version)
        batch_id = batch_id_of(self.chunk_id)
        stored = tracing.send_context(self.batches, batch_id)
        attributes = {"outbox.send_id": batch_id, "outbox.chunk_id": self.chunk_id,
                      "outbox.kind": self.kind.value}  # fmt: skip
        with tracing.span(
            f"outbox.send {self.kind.value}",
            kind="consumer",
            attributes=attributes,
            parent=tracing.chunk_parent(stored),
        ) as current:
            self.span = current
            state = self._run(payload, version)
            tracing.note(current, outbox__state=state, outbox__lane=self.lane,
                         outbox__tenant=self.tenant or None)  # fmt: skip
            return state

    def _run(self, payload: dict[str, Any], version: object) -> str:
        request: Any = None
        try:
            check_version(version)
            request = check(self.kind, payload)
        except UnknownPayloadVersion as exc:
            self.refused = self._unreadable(exc)
        except PoisonPayload as exc:
            self.refused = self._poison(exc)
        token = f"{self.worker}.{os.getpid()}.{next(_WAITS)}"
        return self._act(request, self._claim(token), token)

    def _act(self, request: Any, claim: Claim, token: str) -> str:
        decision = decide(claim)
        match decision.action:
            case Action.LOOK_UP:
                settled = self._look_up(request, claim, token)
                return settled if isinstance(settled, str) else self._act(request, settled, token)
            case Action.SETTLED:
                return str(decision.state) if decision.state else "final"
            case Action.DROP:
                return "busy"
            case Action.QUEUE:
                return "queued"
            case Action.THROTTLE | Action.PAUSED:
                assert decision.state is not None
                return str(decision.state)
            case Action.MISSING if self.refused is not None:
                return self._dead_letter(self.refused)
            case Action.MISSING:
                logger.error(
                    "chunk %s has no record (expired or never created); not sent", self.chunk_id
                )
                return "missing"
            case Action.PARK:
                return self._park(decision.delay)
            case Action.WAIT:
                waited = self._wait_in_line(token)
                if isinstance(waited, str):
                    return waited
                return self._send(request, waited, token)
            case Action.SEND:
                grant = Grant(claim.member, claim.now + claim.wait, claim.now, self.rt.monotonic())
                return self._send(request, grant, token)
        raise RuntimeError(f"chunk {self.chunk_id}: {decision.action} is not what a claim means")

    # -- claiming and waiting -----------------------------------------------------------

    def _claim(self, token: str, *, takeover: bool = False, note: str = "") -> Claim:
        self.claimed_at = self.rt.monotonic()
        claim = self.batches.claim(
            self.chunk_id,
            limit=self.limit,
            worker=self.worker,
            token=token,
            max_wait=self.rt.line_wait,
            takeover=takeover,
            note=note,
        )
        self.lane, self.tenant = claim.lane, claim.tenant
        self.previous = claim.previous
        return claim

    def _park(self, wait: float) -> str:
        due = self.rt.store.now() + wait + random.uniform(0, SPREAD + wait / 10)
        self.rt.store.parked.park(self.call, due)
        return "parked"

    def _wait_in_line(self, token: str) -> Grant | str:
        rt = self.rt
        rt.waiting[self.chunk_id] = token
        try:
            got = rt.store.limits.await_grant(self.limit, self.chunk_id, rt.line_wait)
        finally:
            rt.waiting.pop(self.chunk_id, None)
        if isinstance(got, Grant):
            return got
        if got is Wake.HELD:  # the hold sent the line away: wait parked
            return self._park(HOLD_RECHECK)
        if got in (Wake.PAUSED, Wake.CANCELED, Wake.THROTTLED):  # nothing to send now
            return got.value
        stopping = got is Wake.STOP
        park = None if stopping else (self.call, rt.store.now() + random.uniform(0, SPREAD))
        if self.batches.leave_line(
            self.chunk_id, limit=self.limit, worker=self.worker, token=token, park=park
        ):
            if stopping:
                raise Stop(self.chunk_id)
            return "parked"
        # granted as it was leaving: the grant is waiting on the wake list
        got = rt.store.limits.await_grant(self.limit, self.chunk_id, 1.0)
        if got in (Wake.PAUSED, Wake.CANCELED, Wake.THROTTLED):
            return got.value
        if not isinstance(got, Grant):
            raise RuntimeError(f"chunk {self.chunk_id}: granted a slot but no grant arrived")
        return got

    def _look_up(self, request: Any, claim: Claim, token: str) -> Claim | str:
        """A previous claimant died mid-request: find out whether the API took it.

        Returns the new claim when the chunk is to be sent again, or what became of it.
        """
        rt = self.rt
        if self.refused is not None:
            # no look-up of a request this worker cannot read: dead, saying the earlier
            # attempt's fate is unknown, and only if no other worker took it over since
            note = f"attempt {claim.attempt} of unknown fate, not looked up; check before a replay"
            return self._give_up(State.DEAD, self.refused, note=note, expect=State.SENDING)
        try:
            outcome = reconcile(rt, self.kind, self.chunk_id, request)
        except ThrottledLookup as wait:
            return self._park(wait.wait)
        decision, note = settle(
            outcome, attempt=claim.attempt, ambiguous_policy=rt.settings.ambiguous_policy
        )
        if decision.action is Action.SENT:
            finished = self.batches.finish(
                self.chunk_id,
                State.SENT,
                limit=self.limit,
                fields={"ambiguous": note},
                log={"note": note},
                email_id=outcome.email_id,
                ledger_note=outcome.email_id or "",
            )
            self._after(finished, State.SENT)
            return State.SENT.value
        if decision.action is Action.DEAD:
            error = {"type": "Ambiguous", "message": note}
            return self._give_up(State.DEAD, error, note=note)
        return self._claim(token, takeover=True, note=note)

    # -- sending ------------------------------------------------------------------------

    def _send(self, request: Any, grant: Grant, token: str) -> str:
        rt = self.rt
        attempt = codec.read_member(grant.member).attempt
        if self.refused is not None:
            # the chunk is this worker's now: it ends dead, its slot free at once, and
            # the attempt its claim counted is taken back (the API was never asked)
            return self._give_up(
                State.DEAD, self.refused, expect=State.SENDING, member=grant.member,
                attempts=attempt - 1,
            )  # fmt: skip
        rt.waiting[self.chunk_id] = grant.member
        try:
            with tracing.span("outbox.slot", attributes={"outbox.attempt": attempt}):
                wake = rt.store.limits.await_slot(self.limit, self.chunk_id, grant)
        finally:
            rt.waiting.pop(self.chunk_id, None)
        if wake is not Wake.GO:
            claim = Claim(
                self.chunk_id, ClaimOutcome.CLAIMED, 0.0, attempt, self.previous, grant.now
            )
            if wake in (Wake.PAUSED, Wake.CANCELED):
                # its send was paused or canceled before the slot came: nothing went out,
                # and the claim after the slot is given back pauses or cancels the chunk
                # (or carries on, when a resume came first)
                note = f"slot given back: its send was {wake.value}"
                self.batches.give_back(claim, limit=self.limit, note=note)
                return self._act(request, self._claim(token), token)
            stopping = wake is Wake.STOP
            park = None if stopping else (self.call, rt.store.now() + HOLD_RECHECK)
            note = (
                "slot given back: the worker is stopping"
                if stopping
                else "slot given back: account held"
            )
            self.batches.give_back(claim, limit=self.limit, note=note, park=park)
            if stopping:
                raise Stop(self.chunk_id)
            return "parked"
        waited = rt.monotonic() - self.claimed_at
        rt.metrics.waited(waited, self.lane, self.tenant)
        tracing.note(self.span, outbox__attempt=attempt, outbox__slot_wait_seconds=waited)
        endpoint = self.spec.endpoint
        with tracing.span(
            f"SMTP2GO {endpoint.path}", kind="client", attributes={"outbox.attempt": attempt}
        ) as call:
            outcome = self._request(tagged(self.kind, request, self.chunk_id))
            if isinstance(outcome, SMTP2GOError):
                tracing.note(call, http__response__status_code=outcome.status_code)
                tracing.failed(call, str(outcome))
            else:
                tracing.note(call, http__response__status_code=200)
        answered_at = time.monotonic()
        # Redis's clock: an error's verdict parks the call and may end the lease on it; a
        # 200's reads no clock, so a send costs no round trip for it
        now = rt.store.now() if isinstance(outcome, SMTP2GOError) else grant.now
        verdict = judge(
            outcome,
            kind=self.kind,
            request=request,
            attempt=attempt,
            now=now,
            policy=rt.policy,
            settings=rt.settings,
        )
        park = (self.call, now + verdict.park) if verdict.park is not None else None
        finished = self.batches.finish(
            self.chunk_id,
            verdict.state,
            limit=self.limit,
            fields=verdict.fields,
            log=verdict.log,
            expect=State.SENDING,
            member=grant.member,
            went_out=verdict.went_out,
            answered_at=answered_at,
            email_id=verdict.email_id,
            cool_down=verdict.cool_down,
            hold=verdict.hold,
            park=park,
            ledger_note=verdict.ledger_note,
            hand_off=True,
        )
        self.handed = finished.handed
        rt.metrics.cooled(finished.cooled)
        if verdict.retry is not None and finished.outcome is FinishOutcome.MOVED:
            rt.metrics.retried(verdict.retry)
        if verdict.hold:
            logger.error(
                "the API refused the account's key on a send (%s): every send is held until "
                "the key works again",
                verdict.fields.get("last_error", {}).get("message"),
            )
        self._after(finished, verdict.state)
        return finished.state or verdict.state.value

    def _request(self, body: dict[str, Any]) -> SendResult | SmsSendResult | SMTP2GOError:
        client = self.rt.client
        try:
            return client.send(self.spec.endpoint, body)  # type: ignore[no-any-return]
        except SMTP2GOError as err:
            return err

    # -- endings ------------------------------------------------------------------------

    def _poison(self, exc: PoisonPayload) -> dict[str, Any]:
        """The error a payload no producer of this version wrote ends dead with."""
        errors = exc.field_errors
        logger.error("chunk %s: not a payload outbox writes (%s); not sent", self.chunk_id, errors)
        return {
            "type": "InvalidPayload",
            "message": "the task's payload does not validate: " + ", ".join(errors),
            "field_errors": errors,
        }

    def _unreadable(self, exc: UnknownPayloadVersion) -> dict[str, Any]:
        """A format this worker does not read (a producer newer than the worker): never
        guessed at. The dead letter keeps its record, so ``outbox replay`` sends it once
        a worker that reads the version runs."""
        logger.error("chunk %s: %s; not sent", self.chunk_id, exc)
        return {"type": "UnknownPayloadVersion", "message": str(exc), "version": exc.version}

    def _dead_letter(self, error: dict[str, Any]) -> str:
        # No record to mark (expired, never created): still leave a dead letter.
        if self.batches.bury_orphan(self.chunk_id, kind=self.kind, error=error):
            self.rt.metrics.finished(self.kind, State.DEAD)
            return State.DEAD.value
        return self._give_up(State.DEAD, error)

    def _give_up(
        self,
        state: State,
        error: dict[str, Any],
        *,
        note: str | None = None,
        expect: State | None = None,
        member: str = "",
        attempts: int | None = None,
    ) -> str:
        """End the chunk (``expect``: only from that state); ``member`` is a slot this
        worker took and never used, freed at once (``attempts``: the count without it)."""
        fields: dict[str, Any] = {"last_error": error}
        if attempts is not None:
            fields["attempts"] = attempts
        log: dict[str, Any] = {"error": error}
        if note:
            fields["ambiguous"] = note
            log["note"] = note
        finished = self.batches.finish(
            self.chunk_id,
            state,
            limit=self.limit,
            fields=fields,
            log=log,
            expect=expect,
            member=member,
            went_out=False,
            ledger_note=note or str(error.get("message", "")),
        )
        self._after(finished, state)
        if finished.outcome is FinishOutcome.NOOP:
            return finished.state or "busy"
        return state.value

    def _after(self, finished: Finish, state: State) -> None:
        """Count a chunk this call made final, and fire the batch's completion callback,
        exactly once: only the call that made the last chunk final learns ``BATCH_DONE``."""
        if finished.outcome in (FinishOutcome.FINAL, FinishOutcome.BATCH_DONE):
            # a retry of a chunk canceled meanwhile ends canceled, not as asked
            self.rt.metrics.finished(self.kind, State(finished.state or state))
        if finished.outcome is not FinishOutcome.BATCH_DONE or not finished.has_callback:
            return
        fire_callback(self.rt.store, batch_id_of(self.chunk_id))
