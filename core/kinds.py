"""Every kind of message as one row: what sends it, where it waits, how its answer reads.

The producers, the tasks, the delivery, the look-up of a lost answer and the Lua scripts
read a kind's :class:`KindSpec` instead of branching on it, so a new kind is a row here
(and its payload's shape in :mod:`outbox.core.wire`, keyed by the endpoint's request
model), as a new endpoint is a row of :mod:`outbox.core.smtp2go.endpoints`. The kinds'
values and their task names are on the broker and in the records: they never change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from outbox.core.queues import Queue, TaskName
from outbox.core.smtp2go.answers import SendResult, SmsSendResult
from outbox.core.smtp2go.endpoints import (
    ACTIVITY_SEARCH,
    EMAIL_MIME,
    EMAIL_SEND,
    SMS_SEND,
    SMS_VIEW_SENT,
    Endpoint,
)
from outbox.core.states import Kind

__all__ = ["KINDS", "SEND_TASKS", "KindSpec", "Reading", "lane_for", "queue_for"]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a 200 says: the fields to record, whether the API refused the message, and
    the email's id (``None`` when the answer names none, or names messages instead)."""

    fields: dict[str, Any]
    refused: bool
    email_id: str | None = None


def _email_answer(answer: SendResult, request: Mapping[str, Any]) -> Reading:
    """Counts of emails (a request is one email), never of recipients, and the
    ``email_id`` the webhooks' events name."""
    fields: dict[str, Any] = {"request_id": answer.request_id, "failures": list(answer.failures)}
    if answer.succeeded is not None:
        fields["succeeded"] = answer.succeeded
    if answer.failed is not None:
        fields["failed"] = answer.failed
    return Reading(fields, answer.refused, answer.email_id or None)


def _sms_answer(answer: SmsSendResult, request: Mapping[str, Any]) -> Reading:
    """One message id per number (the events name those); refused when every number
    was."""
    ids = {m.destination: m.message_id for m in answer.messages if m.message_id}
    refused = [m.destination for m in answer.messages if m.status in {"failed", "rejected"}]
    everyone = len(refused) >= len(request["destination"]) > 0 and bool(answer.messages)
    fields = {"request_id": answer.request_id, "message_ids": ids, "failures": refused}
    return Reading(fields, everyone)


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: Kind
    #: The send task (its name is on the broker).
    task: TaskName
    #: Where it is sent; the endpoint's request model names the payload's shape
    #: (:func:`outbox.core.wire.check`).
    endpoint: Endpoint[Any]
    #: How a 200 of :attr:`endpoint` is read.
    read: Callable[[Any, Mapping[str, Any]], Reading]
    #: Its own queue and lane; ``None``: ``email`` or ``bulk``, by the send's lane.
    queue: Queue | None
    #: It counts against the account's monthly email quota (``stats/email_cycle``).
    metered: bool
    #: Where an attempt whose answer was lost is looked up (:mod:`.reconcile`);
    #: ``None``: it cannot be, and its fate stays unknown.
    look_up: Endpoint[Any] | None


#: Every kind, by its value.
KINDS: dict[Kind, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            Kind.EMAIL,
            TaskName.SEND_EMAIL,
            EMAIL_SEND,
            _email_answer,
            queue=None,
            metered=True,
            look_up=ACTIVITY_SEARCH,
        ),
        KindSpec(
            Kind.TEMPLATE,
            TaskName.SEND_TEMPLATE,
            EMAIL_SEND,
            _email_answer,
            queue=None,
            metered=True,
            look_up=ACTIVITY_SEARCH,
        ),
        KindSpec(
            Kind.MIME,
            TaskName.SEND_MIME,
            EMAIL_MIME,
            _email_answer,
            queue=None,
            metered=True,
            look_up=ACTIVITY_SEARCH,
        ),
        # SMS have credits of their own, and no custom header to be found by
        KindSpec(
            Kind.SMS,
            TaskName.SEND_SMS,
            SMS_SEND,
            _sms_answer,
            queue=Queue.SMS,
            metered=False,
            look_up=SMS_VIEW_SENT,
        ),
    )
}

#: The send task of each kind of message.
SEND_TASKS: dict[Kind, TaskName] = {kind: spec.task for kind, spec in KINDS.items()}


def lane_for(kind: Kind, chunks: int, bulk_threshold: int) -> str:
    """A send's lane when it names none: ``bulk`` above ``bulk_threshold`` chunks, for a
    kind that goes to the shared queues."""
    bulk = KINDS[kind].queue is None and chunks > bulk_threshold
    return "bulk" if bulk else "transactional"


def queue_for(kind: Kind, chunks: int, bulk_threshold: int, *, lane: str | None = None) -> Queue:
    """Where a batch's chunks go: a kind's own queue (SMS to ``sms``), else the bulk lane
    (by default, batches of more than ``bulk_threshold`` chunks) to ``bulk``, the rest to
    ``email``."""
    own = KINDS[kind].queue
    if own is not None:
        return own
    if lane is None:
        lane = lane_for(kind, chunks, bulk_threshold)
    return Queue.BULK if lane == "bulk" else Queue.EMAIL
