"""What an answer from the API (or an error instead of one) means for a chunk.

A pure function of the answer, the attempt and the retry policy, tested as a table
(``tests/unit/test_delivery.py``); :class:`~outbox.worker.delivery.Delivery` records
what it decides.

What an answer means (the real service's, ``docs/smtp2go-fidelity.md``): a 200 whose
``succeeded`` is 0 and ``failed`` is not refused the email (an unverified sender, say):
the chunk is ``failed`` with the API's messages and is never sent again; a 200 with
``succeeded`` >= 1 is ``sent``, any ``failures`` kept on the record. The counts are of
emails (a request is one email), never of recipients.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from outbox.errors import RateLimitedError, SMTP2GOError, TransportError
from outbox.worker.reconcile import SETTLE_SECONDS
from outbox.worker.retry import Action, Reason, reason_of
from outbox.worker.smtp2go.models import SendResult, SmsSendResult
from outbox.worker.states import State

if TYPE_CHECKING:
    from outbox.worker.runtime import Runtime

__all__ = ["HOLD_RECHECK", "Verdict", "judge"]

#: How long a task whose account is held waits parked before it looks again (the hold's
#: probe lifts it as soon as the key works).
HOLD_RECHECK = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one answer (or error) means for the chunk, ready for ``Batches.finish``."""

    state: State
    fields: dict[str, Any] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)
    email_id: str | None = None
    #: The request may have reached the API (false: it surely did not).
    went_out: bool = True
    #: A 429: every worker holds off this long.
    cool_down: float | None = None
    #: The account cannot send: hold every send, with this reason (JSON).
    hold: str | None = None
    #: Park the task call for this long (a retry, a hold, a look-up).
    park: float | None = None
    #: Why another attempt comes (a state that is not final).
    retry: Reason | None = None
    #: What the recipients' ledger says about it.
    ledger_note: str = ""


def _answer_fields(
    answer: SendResult | SmsSendResult, request: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The fields to record from a 200, and whether the API refused the message."""
    if isinstance(answer, SmsSendResult):
        ids = {m.destination: m.message_id for m in answer.messages if m.message_id}
        refused = [m.destination for m in answer.messages if m.status in {"failed", "rejected"}]
        everyone = len(refused) >= len(request["destination"]) > 0 and bool(answer.messages)
        return {"request_id": answer.request_id, "message_ids": ids, "failures": refused}, everyone
    fields: dict[str, Any] = {"request_id": answer.request_id, "failures": list(answer.failures)}
    if answer.succeeded is not None:
        fields["succeeded"] = answer.succeeded
    if answer.failed is not None:
        fields["failed"] = answer.failed
    return fields, answer.refused


def judge(
    outcome: SendResult | SmsSendResult | SMTP2GOError,
    *,
    request: Mapping[str, Any],
    attempt: int,
    rt: Runtime,
    rng: random.Random | None = None,
) -> Verdict:
    """What an answer (or an error) means for the chunk whose ``attempt`` it ended."""
    if not isinstance(outcome, SMTP2GOError):
        fields, refused = _answer_fields(outcome, request)
        email_id = getattr(outcome, "email_id", None) or None
        log = {"attempt": attempt, "email_id": email_id}
        if not refused:
            return Verdict(State.SENT, fields, log, email_id, ledger_note=email_id or "")
        messages = fields.get("failures") or ["the API refused the message"]
        error = {"type": "Refused", "message": "; ".join(messages), "retryable": False}
        fields["last_error"] = error
        return Verdict(
            State.FAILED, fields, {**log, "error": error}, ledger_note=str(error["message"])
        )

    err = outcome
    error = err.to_dict()
    reason = reason_of(err)
    settings = rt.settings
    cool_down = None
    if isinstance(err, RateLimitedError):
        cool_down = rt.policy.hint(err.retry_after, settings.cooldown_seconds)
    decision = rt.policy.decide(err, attempt, hint=cool_down, rng=rng)
    went_out = not (isinstance(err, TransportError) and not err.ambiguous)
    shared = cool_down if settings.shared_cooldown else None
    if decision.action is Action.HOLD:
        why = {"error": error, "reason": f"{err.status_code or ''} {err.message}".strip()}
        note = "account held: the API refused the key; the attempt does not count"
        return Verdict(
            State.RETRYING,
            {"last_error": error, "attempts": attempt - 1},
            {"attempt": attempt, "error": error, "note": note},
            went_out=went_out,
            hold=json.dumps(why),
            park=HOLD_RECHECK,
            retry=reason,
        )
    if isinstance(err, TransportError) and err.ambiguous:
        # The request may have reached the API (a read timeout, a dropped connection): a
        # blind retry could send twice. Settle it the way a dead worker's claim is: leave
        # it claimed, its lease ended, and look it up first when it comes back.
        note = f"ambiguous attempt {attempt}: {error['type']} after the request was sent"
        if decision.action is not Action.RETRY:
            note += "; outcome unknown and attempts exhausted: check the activity before a replay"
            return Verdict(
                State.DEAD,
                {"last_error": error, "ambiguous": note},
                {"attempt": attempt, "error": error, "note": note},
                ledger_note=note,
            )
        note += "; looked up before any resend"
        return Verdict(
            State.SENDING,
            {"last_error": error, "ambiguous": note, "lease_until": rt.store.now()},
            {"attempt": attempt, "error": error, "note": note},
            cool_down=shared,
            park=max(decision.delay, SETTLE_SECONDS),
            retry=reason,
        )
    if decision.action is Action.RETRY:
        return Verdict(
            State.RETRYING,
            {"last_error": error},
            {"attempt": attempt, "error": error, "retry_in": round(decision.delay, 3)},
            went_out=went_out,
            cool_down=shared,
            park=decision.delay,
            retry=reason,
        )
    state = State.FAILED if decision.action is Action.FAIL else State.DEAD
    return Verdict(
        state,
        {"last_error": error},
        {"attempt": attempt, "error": error},
        went_out=went_out,
        cool_down=shared,
        ledger_note=str(error.get("message") or error["type"]),
    )
