"""``outbox.record_event``: put one webhook event on the record of the message it names.

The only way from an event to a record is the event's ``email_id`` through
``keys.email_index``, or an SMS event's ``message_id`` through ``keys.sms_index`` (both
written when the send is recorded); nothing in an event can name a chunk directly, so
an event never lands on another message's record.

- Repeats (SMTP2GO retries a notification up to 35 times over 48 hours, with the same
  ``id``) are written once: the chunk's events hash is keyed by the provider's ``id``
  (:func:`~outbox.worker.webhooks.parse.event_key`; the digest of the event when it
  has none) and written only if new. An event that moves recipients in the batch's
  ledger does so in the same script: ``processed`` every recipient it lists, a later
  email event its ``rcpt``, an SMS event its destination number. A repeat moves nobody.
  Two webhooks pointed at one receiver post each event under two ids: both are kept,
  and the ledger moves once.
- ``processed`` (and ``sms_sending``) can arrive before the worker has recorded the send
  (the provider posts it as soon as it accepts the request, the worker records after
  reading the answer), so an unknown id is retried a few times over ~10 s before the
  event is parked in the bounded ``keys.webhook_unmatched()`` list; a beat job
  (:func:`rematch_parked`) records the parked ones whose send was recorded later.
- An event that meets an unreachable Redis goes back to the broker
  (``worker.unavailable``) instead of being acknowledged and lost.
- A hard bounce or a spam complaint adds the lower-cased address to
  ``keys.suppressed()`` (when ``suppress_on_bounce``), matched or not: the address is
  bad whoever sent to it, and producers consult that set before enqueueing. Not when
  the address was lifted after the event happened (a retried old bounce), and an
  erased address only by its keyed hash, as beat's sync adds them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from outbox.core import tracing
from outbox.core.queues import TaskName
from outbox.core.smtp2go.models import address_key
from outbox.core.states import Fate
from outbox.core.store.chunks import StoredChunk, batch_id_of
from outbox.core.store.parked import Call
from outbox.core.text import epoch_seconds
from outbox.worker.celery_app import app
from outbox.worker.metrics import event_label
from outbox.worker.runtime import Runtime, get_runtime
from outbox.worker.unavailable import hand_back_when_unavailable
from outbox.worker.webhooks.parse import event_key, fate_of, should_suppress

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
#: Why an event naming a message was parked: the one reason a later look can cure.
NO_MATCH = "no message of ours has this email_id or SMS message_id"
#: Ledger places whose reason is worth the server's words (a bounce's SMTP answer).
_EXPLAINED = frozenset({Fate.SOFT_BOUNCED, Fate.HARD_BOUNCED, Fate.REJECTED, Fate.FAILED})


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
    if not isinstance(event, dict):
        return "?"
    return f"{event.get('event')} for {event.get('email_id') or event.get('message_id')}"


def _message_of(event: Mapping[str, Any]) -> tuple[str, str | None]:
    """Which id names the event's message, and its value."""
    field = "message_id" if event.get("channel") == "sms" else "email_id"
    value = event.get(field)
    return field, value if isinstance(value, str) and value else None


def _chunk_of(rt: Runtime, event: Mapping[str, Any]) -> str | None:
    field, ident = _message_of(event)
    if ident is None:
        return None
    batches = rt.store.batches
    return batches.chunk_for_sms(ident) if field == "message_id" else batches.chunk_for_email(ident)


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def _sms_recipient(chunk: StoredChunk | None, event: Mapping[str, Any]) -> list[str]:
    """The chunk's own spelling of the event's number (``+61 400…`` and ``61400…`` are
    one number): found by the message id the answer gave it, else by its digits."""
    if chunk is None:
        return []
    message_id = event.get("message_id")
    number = next((d for d, m in chunk.message_ids.items() if m == message_id), None)
    wanted = _digits(str(number or event.get("rcpt") or ""))
    return [r for r in chunk.recipients if wanted and _digits(r) == wanted][:1]


def _ledger_keys(rt: Runtime, chunk_id: str, event: Mapping[str, Any]) -> list[str]:
    """The ledger keys of the recipients an event is about."""
    if event.get("channel") == "sms":
        return _sms_recipient(rt.store.batches.chunk(chunk_id), event)
    listed = event.get("recipients") if event.get("event") == "processed" else None
    addresses = listed or [event.get("rcpt")]
    return [k for k in (address_key(str(a or "")) for a in addresses) if k]


def _why(event: Mapping[str, Any], fate: Fate) -> str:
    """What the ledger keeps as the reason of a bounce, a rejection or a failed SMS."""
    if fate not in _EXPLAINED:
        return ""
    raw = event.get("raw") if isinstance(event.get("raw"), dict) else {}
    for value in (event.get("message"), event.get("context"), (raw or {}).get("status_code")):
        if value and value != "Unavailable":
            return str(value)[:300]
    return ""


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


def _happened_at(event: Mapping[str, Any]) -> float:
    """When the provider says the event happened (its ``time``), else when it reached
    the receiver: epoch seconds."""
    at = epoch_seconds(event.get("time"))
    return at if at is not None else float(event.get("received_at") or 0.0)


def record(rt: Runtime, event: Mapping[str, Any], *, last_try: bool = True) -> Outcome:
    """Suppress if the event calls for it, then put it on its chunk (once) and move its
    recipient's place in the batch's ledger.

    With ``last_try`` false an unknown ``email_id`` answers :attr:`Outcome.NOT_YET`
    instead of parking the event, so the caller can try again after a short wait.
    """
    if not isinstance(event.get("event"), str):
        return Outcome.INVALID
    address = should_suppress(event)
    # as a sync's read: not when the address was lifted after the event (a provider's
    # retry of an old bounce), and an erased address by its keyed hash only
    if (
        address
        and rt.settings.suppress_on_bounce
        and rt.store.suppressions.add_synced([address], since=_happened_at(event))
    ):
        logger.info("suppressed an address after a %s event", event.get("event"))

    field, ident = _message_of(event)
    if ident is None:
        return _park(rt, event, f"no {field}")
    chunk_id = _chunk_of(rt, event)
    if chunk_id is None:
        if not last_try:
            return Outcome.NOT_YET
        return _park(rt, event, NO_MATCH)

    value = dict(event)
    if not isinstance(value.get("received_at"), int | float):
        value["received_at"] = rt.store.now()
    fate = fate_of(event)
    # recorded long after its send's trace ended: a span of its own, linked to that trace
    batch_id = batch_id_of(chunk_id)
    with tracing.span(
        f"outbox.event {event.get('event')}",
        attributes={"outbox.send_id": batch_id, "outbox.chunk_id": chunk_id},
        link=tracing.send_context(rt.store.batches, batch_id),
    ):
        recorded = rt.store.events.record(
            chunk_id,
            event_key(event),
            value,
            fate=fate,
            recipients=_ledger_keys(rt, chunk_id, event) if fate else (),
            why=_why(event, fate) if fate else "",
        )
    if not recorded:
        logger.debug("duplicate %s event for %s ignored", event.get("event"), ident)
        return Outcome.DUPLICATE
    logger.debug("%s event for %s recorded on chunk %s", event.get("event"), ident, chunk_id)
    return Outcome.RECORDED


def rematch_parked(rt: Runtime) -> int:
    """Record the parked events whose message has since been indexed; how many.

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
        if _chunk_of(rt, entry) is None:
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
    name=TaskName.RECORD_EVENT.value, ignore_result=True
)
@hand_back_when_unavailable(lambda event, tries=0: f"webhook event {_name_of(event)}")
def record_event(event: dict[str, Any], tries: int = 0) -> str:
    """One normalised event from the receiver (:mod:`outbox.worker.webhooks.parse`)."""
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
