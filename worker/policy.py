"""What a chunk's attempt does next, decided in one place.

Every choice of an attempt is a pure function here, each returning a :class:`Decision`
(an action, a delay, the reason of a retry, the state to record), tested as tables;
:class:`~outbox.worker.delivery.Delivery` asks and acts, against Redis, the broker and
the API. The clock is an argument (``now``, Redis's time read by the caller), never read
here.

- :func:`decide`: what a claim means (send now or at the slot's time, wait in line,
  park, leave it to another worker, look an unknown attempt up, ...);
- :func:`judge`: what an answer (or the error instead of one) means for the chunk;
- :func:`settle`: what a look-up of an attempt of unknown fate means;
- :meth:`RetryPolicy.decide`: the retry precedence, first match wins:

  1. the account cannot send (a rejected key, a missing permission: an
     :class:`~outbox.core.errors.AccountError`) -> ``hold``: every send waits for the key to
     work again, and this attempt is not counted: it is not the message's fault;
  2. a permanent error (``retryable`` false on its class: any 4xx but 429, a payload the
     API can never accept) -> ``fail``: recorded ``failed`` at once, never retried;
  3. attempts used up -> ``dead``: recorded and put in the dead letters for replay;
  4. otherwise -> ``retry`` after a full-jitter exponential backoff, never sooner than
     the server's own hint (``Retry-After``, or the shared cool-down left), which is
     itself capped: a hint asking for hours is not obeyed blindly.

Only attempts at the API count. Waiting for the shared rate limit or a cool-down spends
no attempt: those waits are not failures of the message.

What an answer means (the real service's, ``docs/smtp2go-fidelity.md``): a 200 whose
``succeeded`` is 0 and ``failed`` is not refused the email (an unverified sender, say):
the chunk is ``failed`` with the API's messages and is never sent again; a 200 with
``succeeded`` >= 1 is ``sent``, any ``failures`` kept on the record. The counts are of
emails (a request is one email), never of recipients. An error after the request may
have reached the API (a read timeout, a dropped connection) is neither: the chunk stays
claimed, its lease ended, and is looked up before anything is sent again.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from outbox.core.errors import (
    AccountError,
    RateLimitedError,
    ServerError,
    SMTP2GOError,
    TransportError,
)
from outbox.core.kinds import KINDS
from outbox.core.smtp2go.answers import SendResult, SmsSendResult
from outbox.core.states import Kind, State
from outbox.core.store.batches import Claim, ClaimOutcome

if TYPE_CHECKING:
    from outbox.core.settings import Settings

__all__ = [
    "HOLD_RECHECK",
    "SETTLE_SECONDS",
    "Action",
    "Decision",
    "Reason",
    "Reconciliation",
    "RetryPolicy",
    "Verdict",
    "backoff",
    "decide",
    "judge",
    "reason_of",
    "settle",
]

#: How long a task whose account is held waits parked before it looks again (the hold's
#: probe lifts it as soon as the key works).
HOLD_RECHECK = 30.0
#: Events take a moment to show in the activity log after a send is accepted: an
#: attempt of unknown fate is looked up no sooner.
SETTLE_SECONDS = 2.0


class Action(StrEnum):
    """What the attempt does next: the one vocabulary of claims, answers and look-ups."""

    #: Send at the slot's time (``Decision.delay`` seconds from the claim).
    SEND = "send"
    #: Wait in the rate-limit line for a slot.
    WAIT = "wait"
    #: The chunk waits in the bulk lane without a thread: the task is done.
    QUEUE = "queue"
    #: Keep the task call parked for ``Decision.delay`` seconds.
    PARK = "park"
    #: Over the monthly quota: the chunk waits ``throttled`` (no task kept) for a quota
    #: read that finds room (:func:`outbox.worker.beat.sync_quota` publishes it again).
    THROTTLE = "throttle"
    #: Another worker holds the chunk (a duplicate message): nothing to do.
    DROP = "drop"
    #: Its send is paused: the chunk waits ``paused`` (no task kept) for ``resume``.
    PAUSED = "paused"
    #: The chunk is final already.
    SETTLED = "settled"
    #: An attempt's fate is unknown: look it up (after ``Decision.delay``) before
    #: anything is sent.
    LOOK_UP = "look_up"
    #: No record: nothing can be sent.
    MISSING = "missing"
    #: The API accepted it: record it ``sent``.
    SENT = "sent"
    #: A looked-up attempt the API did not take: claim it again and send it.
    RESEND = "resend"
    #: Schedule another attempt after ``Decision.delay``.
    RETRY = "retry"
    #: Give up for good: the request can never succeed as it stands.
    FAIL = "fail"
    #: Give up after the last attempt: keep it for an operator to replay.
    DEAD = "dead"
    #: The account cannot send: hold every send until the key works again.
    HOLD = "hold"


class Reason(StrEnum):
    """Why an attempt is tried again (the ``reason`` of ``outbox_retries_total``)."""

    #: A 429: the fleet cools down first.
    RATE_LIMITED = "rate_limited"
    #: A 5xx.
    SERVER_ERROR = "server_error"
    #: No answer, and the request surely never reached the API (connect error, pool
    #: timeout).
    NETWORK = "network"
    #: No answer after the request may have reached the API: looked up before a resend.
    AMBIGUOUS = "ambiguous"
    #: The API refused the key: the account's sending is held, no attempt spent.
    HELD = "held"
    #: Any other retryable error (an unexpected status).
    OTHER = "other"


def reason_of(error: SMTP2GOError) -> Reason:
    """The :class:`Reason` an error gives for another attempt."""
    if isinstance(error, AccountError):
        return Reason.HELD
    if isinstance(error, TransportError):
        return Reason.AMBIGUOUS if error.ambiguous else Reason.NETWORK
    if isinstance(error, RateLimitedError):
        return Reason.RATE_LIMITED
    if isinstance(error, ServerError):
        return Reason.SERVER_ERROR
    return Reason.OTHER


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of the policy: what to do, after how long, why, and the state the
    chunk is recorded in (``None``: it is not recorded by this decision)."""

    action: Action
    delay: float = 0.0
    #: Why another attempt comes (a retry, a hold, a look-up).
    reason: Reason | None = None
    state: State | None = None


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``.

    Full jitter spreads a fleet's retries evenly instead of in synchronised waves.
    ``attempt`` is the number of the attempt that just failed, from 1.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt cap and backoff constants; ``decide`` is a pure function of its arguments."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0
    #: The longest a server's hint may delay an attempt.
    hint_cap: float = 900.0

    def hint(self, seconds: float | None, default: float) -> float:
        """The wait a 429 asks for: its hint (capped), or ``default`` without one."""
        return min(seconds if seconds is not None else default, self.hint_cap)

    def decide(
        self,
        error: SMTP2GOError,
        attempt: int,
        *,
        hint: float | None = None,
        rng: random.Random | None = None,
    ) -> Decision:
        """What to do after ``attempt`` (from 1) failed with ``error`` (the precedence
        above).

        ``hint`` is the server's wait (``Retry-After``) or the shared cool-down left; it
        is a floor for the delay, up to :attr:`hint_cap`.
        """
        reason = reason_of(error)
        if isinstance(error, AccountError):
            return Decision(Action.HOLD, HOLD_RECHECK, reason, State.RETRYING)
        if not error.retryable:
            return Decision(Action.FAIL, state=State.FAILED)
        if attempt >= self.max_attempts:
            return Decision(Action.DEAD, state=State.DEAD)
        delay = backoff(attempt, self.base, self.cap, rng)
        if hint is not None:
            delay = max(delay, min(hint, self.hint_cap))
        return Decision(Action.RETRY, delay, reason, State.RETRYING)


def decide(claim: Claim, *, hold_recheck: float = HOLD_RECHECK) -> Decision:
    """What a task does with its claim."""
    match claim.outcome:
        case ClaimOutcome.CLAIMED:
            return Decision(Action.SEND, claim.wait)
        case ClaimOutcome.WAITING:
            return Decision(Action.WAIT)
        case ClaimOutcome.QUEUED:
            return Decision(Action.QUEUE)
        case ClaimOutcome.LATER:
            return Decision(Action.PARK, claim.wait)
        case ClaimOutcome.OVER_QUOTA:
            return Decision(Action.THROTTLE, state=State.THROTTLED)
        case ClaimOutcome.HELD:
            return Decision(Action.PARK, hold_recheck, Reason.HELD)
        case ClaimOutcome.PAUSED:
            return Decision(Action.PAUSED, state=State.PAUSED)
        case ClaimOutcome.FINAL:
            return Decision(Action.SETTLED, state=claim.previous)
        case ClaimOutcome.BUSY:
            return Decision(Action.DROP)
        case ClaimOutcome.AMBIGUOUS:
            return Decision(Action.LOOK_UP, reason=Reason.AMBIGUOUS)
        case ClaimOutcome.MISSING:
            return Decision(Action.MISSING)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a look-up of an attempt of unknown fate found
    (:func:`outbox.worker.reconcile.reconcile` asks the API; :func:`settle` decides)."""

    #: The API accepted the earlier attempt.
    found: bool
    #: The look-up worked: not found means not accepted, so a resend is safe.
    conclusive: bool
    #: How it was decided, for the record.
    how: str
    email_id: str | None = None
    recipients: int = 0


def settle(found: Reconciliation, *, attempt: int, ambiguous_policy: str) -> tuple[Decision, str]:
    """What a look-up of ``attempt`` (of unknown fate) means, and the note to record:
    found, it was sent; not found, it is sent again, unless the look-up could not tell
    and ``OUTBOX_AMBIGUOUS_POLICY`` is ``hold`` (a dead letter for an operator)."""
    if found.found:
        note = f"ambiguous attempt {attempt}: accepted (found by {found.how}); not resent"
        return Decision(Action.SENT, state=State.SENT), note
    if not found.conclusive and ambiguous_policy == "hold":
        note = f"ambiguous attempt {attempt}: {found.how}; held for an operator"
        return Decision(Action.DEAD, state=State.DEAD), note
    note = f"ambiguous attempt {attempt}: {found.how}; resent"
    return Decision(Action.RESEND, reason=Reason.AMBIGUOUS), note


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one answer (or error) means for the chunk: the policy's decision, and the
    record it leaves, ready for ``Batches.finish``."""

    decision: Decision
    fields: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    email_id: str | None = None
    #: The request may have reached the API (false: it surely did not).
    went_out: bool = True
    #: A 429: every worker holds off this long.
    cool_down: float | None = None
    #: The account cannot send: hold every send, with this reason (JSON).
    hold: str | None = None
    #: What the recipients' ledger says about it.
    ledger_note: str = ""

    @property
    def state(self) -> State:
        """The chunk's state after the answer."""
        assert self.decision.state is not None
        return self.decision.state

    @property
    def park(self) -> float | None:
        """Park the task call for this long (a retry, a hold, a look-up); ``None``: no
        call is kept."""
        parked = self.decision.action in (Action.RETRY, Action.HOLD, Action.LOOK_UP)
        return self.decision.delay if parked else None

    @property
    def retry(self) -> Reason | None:
        """Why another attempt comes (a state that is not final)."""
        return self.decision.reason if self.park is not None else None


def judge(
    outcome: SendResult | SmsSendResult | SMTP2GOError,
    *,
    kind: Kind,
    request: Mapping[str, Any],
    attempt: int,
    now: float,
    policy: RetryPolicy,
    settings: Settings,
    rng: random.Random | None = None,
) -> Verdict:
    """What an answer (or an error) means for the ``kind`` of chunk whose ``attempt`` it
    ended at ``now`` (Redis's clock); a 200 is read as the kind's row says."""
    if not isinstance(outcome, SMTP2GOError):
        reading = KINDS[kind].read(outcome, request)
        fields, email_id = reading.fields, reading.email_id
        log = {"attempt": attempt, "email_id": email_id}
        if not reading.refused:
            sent = Decision(Action.SENT, state=State.SENT)
            return Verdict(sent, fields, log, email_id, ledger_note=email_id or "")
        messages = fields.get("failures") or ["the API refused the message"]
        error = {"type": "Refused", "message": "; ".join(messages), "retryable": False}
        fields["last_error"] = error
        return Verdict(
            Decision(Action.FAIL, state=State.FAILED),
            fields,
            {**log, "error": error},
            ledger_note=str(error["message"]),
        )

    err = outcome
    error = err.to_dict()
    cool_down = None
    if isinstance(err, RateLimitedError):
        cool_down = policy.hint(err.retry_after, settings.cooldown_seconds)
    decision = policy.decide(err, attempt, hint=cool_down, rng=rng)
    went_out = not (isinstance(err, TransportError) and not err.ambiguous)
    shared = cool_down if settings.shared_cooldown else None
    if decision.action is Action.HOLD:
        why = {"error": error, "reason": f"{err.status_code or ''} {err.message}".strip()}
        note = "account held: the API refused the key; the attempt does not count"
        return Verdict(
            decision,
            {"last_error": error, "attempts": attempt - 1},
            {"attempt": attempt, "error": error, "note": note},
            went_out=went_out,
            hold=json.dumps(why),
        )
    if isinstance(err, TransportError) and err.ambiguous:
        # The request may have reached the API (a read timeout, a dropped connection): a
        # blind retry could send twice. Settle it the way a dead worker's claim is: leave
        # it claimed, its lease ended, and look it up first when it comes back.
        note = f"ambiguous attempt {attempt}: {error['type']} after the request was sent"
        if decision.action is not Action.RETRY:
            note += "; outcome unknown and attempts exhausted: check the activity before a replay"
            return Verdict(
                Decision(Action.DEAD, state=State.DEAD),
                {"last_error": error, "ambiguous": note},
                {"attempt": attempt, "error": error, "note": note},
                ledger_note=note,
            )
        note += "; looked up before any resend"
        look_up = Decision(
            Action.LOOK_UP, max(decision.delay, SETTLE_SECONDS), decision.reason, State.SENDING
        )
        return Verdict(
            look_up,
            {"last_error": error, "ambiguous": note, "lease_until": now},
            {"attempt": attempt, "error": error, "note": note},
            cool_down=shared,
        )
    if decision.action is Action.RETRY:
        return Verdict(
            decision,
            {"last_error": error},
            {"attempt": attempt, "error": error, "retry_in": round(decision.delay, 3)},
            went_out=went_out,
            cool_down=shared,
        )
    return Verdict(
        decision,
        {"last_error": error},
        {"attempt": attempt, "error": error},
        went_out=went_out,
        cool_down=shared,
        ledger_note=str(error.get("message") or error["type"]),
    )
