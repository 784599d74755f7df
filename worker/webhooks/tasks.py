"""``outbox.record_event``: put one webhook event on the record of the message it names.

The only way from an event to a record is the event's ``email_id`` through
``keys.email_index`` (written when the send is recorded ``sent``); nothing in an event
can name a chunk directly, so an event never lands on another message's record.

- Duplicates (SMTP2GO retries for 48 hours; two webhooks may post the same event) are
  written once: the chunk's events hash is keyed by the event's identity
  (:func:`~outbox.worker.webhooks.events.digest`) and written only if new. An event that
  tells a recipient's fate (delivered, bounced, complained...) moves it in the batch's
  ledger, in the same script.
- ``processed`` can arrive before the worker has recorded the send (the provider posts
  it as soon as it accepts the request, the worker records after reading the answer),
  so an unknown ``email_id`` is retried a few times over ~10 s before the event is
  parked in the bounded ``keys.webhook_unmatched()`` list; a beat job
  (:func:`rematch_parked`) records the parked ones whose send was recorded later.
- An event that meets an unreachable Redis goes back to the broker
  (``worker.unavailable``) instead of being acknowledged and lost.
- SMS events are parked there at once: SMS message ids are kept on their chunk but not
  indexed, so there is nothing to look them up by.
- A hard bounce or a spam complaint adds the lower-cased address to
  ``keys.suppressed()`` (when ``suppress_on_bounce``), matched or not: the address is
  bad whoever sent to it, and producers consult that set before enqueueing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from outbox.worker.app import app
from outbox.worker.metrics import event_label
from outbox.worker.queues import TaskName
from outbox.worker.runtime import Runtime, get_runtime
from outbox.worker.smtp2go.models import address_key
from outbox.worker.store.parked import Call
from outbox.worker.unavailable import hand_back_when_unavailable
from outbox.worker.webhooks.events import digest, fate_of, should_suppress

__all__ = [
    "MAX_UNMATCHED",
    "NO_MATCH",
    "UNMATCHED_DELAYS",
    "Outcome",
    "record",
    "record_event",
    "rematch_parked",
]

logger = logging.getLogger(__name__)

#: Seconds before each new look for an event whose ``email_id`` is not indexed yet
#: (~10 s in all); the event waits parked in Redis meanwhile.
UNMATCHED_DELAYS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0)
#: The unmatched list keeps this many newest events.
MAX_UNMATCHED = 1000
#: Why an event with an ``email_id`` was parked: the one reason a later look can cure.
NO_MATCH = "no message of ours has this email_id"


class Outcome(StrEnum):
    #: Written to its chunk's events.
    RECORDED = "recorded"
    #: Its chunk already had it (a provider retry, a second webhook).
    DUPLICATE = "duplicate"
    #: No record names its ``email_id`` yet; try again shortly.
    NOT_YET = "not_yet"
    #: Parked in the unmatched list.
    UNMATCHED = "unmatched"
    #: Not a normalised event at all (not produced by the receiver).
    INVALID = "invalid"


def _name_of(event: Any) -> str:
    return f"{event.get('event')} for {event.get('email_id')}" if isinstance(event, dict) else "?"


def _park(rt: Runtime, event: Mapping[str, Any], reason: str) -> Outcome:
    entry = {**event, "unmatched": reason, "parked_at": rt.store.now()}
    rt.store.events.park_unmatched(entry, keep=MAX_UNMATCHED)
    logger.info(
        "webhook event %s (email_id=%s message_id=%s) unmatched: %s",
        event.get("event"),
        event.get("email_id"),
        event.get("message_id"),
        reason,
    )
    return Outcome.UNMATCHED


def record(rt: Runtime, event: Mapping[str, Any], *, last_try: bool = True) -> Outcome:
    """Suppress if the event calls for it, then put it on its chunk (once) and move its
    recipient's place in the batch's ledger.

    With ``last_try`` false an unknown ``email_id`` answers :attr:`Outcome.NOT_YET`
    instead of parking the event, so the caller can try again after a short wait.
    """
    if not isinstance(event.get("event"), str):
        return Outcome.INVALID
    address = should_suppress(event)
    if address and rt.settings.suppress_on_bounce and rt.store.suppressions.add(address):
        logger.info("suppressed %s after a %s event", address, event.get("event"))

    email_id = event.get("email_id")
    if event.get("channel") == "sms":
        return _park(rt, event, "SMS events are not indexed by message id")
    if not isinstance(email_id, str) or not email_id:
        return _park(rt, event, "no email_id")
    chunk_id = rt.store.batches.chunk_for_email(email_id)
    if chunk_id is None:
        if not last_try:
            return Outcome.NOT_YET
        return _park(rt, event, NO_MATCH)

    value = dict(event)
    if not isinstance(value.get("received_at"), int | float):
        value["received_at"] = rt.store.now()
    rcpt = address_key(str(event.get("rcpt") or ""))
    if not rt.store.events.record(
        chunk_id, digest(event), value, fate=fate_of(event), recipient=rcpt or None
    ):
        logger.debug("duplicate %s event for %s ignored", event.get("event"), email_id)
        return Outcome.DUPLICATE
    logger.debug("%s event for %s recorded on chunk %s", event.get("event"), email_id, chunk_id)
    return Outcome.RECORDED


def rematch_parked(rt: Runtime) -> int:
    """Record the parked events whose ``email_id`` has since been indexed; how many.

    A send whose fate was settled late (an ambiguous attempt found in ``activity/search``
    minutes later, a record written after a Redis outage) gets its ``email_id`` long
    after the provider posted ``processed``/``delivered``; those events waited in the
    unmatched list. Each one recorded is removed from the list by its exact entry, so
    events parked meanwhile are untouched; a duplicate is still recorded once.
    """
    recorded = 0
    events = rt.store.events
    for raw, entry in events.unmatched():
        if entry.get("unmatched") != NO_MATCH:
            continue
        email_id = entry.get("email_id")
        if not isinstance(email_id, str) or rt.store.batches.chunk_for_email(email_id) is None:
            continue
        event = {k: v for k, v in entry.items() if k not in {"unmatched", "parked_at"}}
        if record(rt, event) in {Outcome.RECORDED, Outcome.DUPLICATE}:
            events.forget_unmatched(raw)
            recorded += 1
    if recorded:
        logger.info("%d parked webhook event(s) matched their message", recorded)
    return recorded


# Celery's decorator is untyped; the function keeps its annotations for callers' sake.
@app.task(  # type: ignore[untyped-decorator]
    name=TaskName.RECORD_EVENT, ignore_result=True
)
@hand_back_when_unavailable(lambda event, tries=0: f"webhook event {_name_of(event)}")
def record_event(event: dict[str, Any], tries: int = 0) -> str:
    """One normalised event from the receiver (:mod:`outbox.worker.webhooks.events`)."""
    if not isinstance(event, dict):
        logger.error("record_event got %s, not an event; dropped", type(event).__name__)
        return Outcome.INVALID.value
    rt = get_runtime()
    outcome = record(rt, event, last_try=tries >= len(UNMATCHED_DELAYS))
    if outcome is Outcome.NOT_YET:
        # ``processed`` can beat the worker's record of the send: look again shortly.
        due = rt.store.now() + UNMATCHED_DELAYS[tries]
        rt.store.parked.park(Call(TaskName.RECORD_EVENT, args=(event, tries + 1)), due)
        return outcome.value
    if outcome is Outcome.INVALID:
        logger.error("record_event got an event without a name; dropped")
    rt.metrics.webhook_event(event_label(event.get("event")), outcome.value)
    return outcome.value
