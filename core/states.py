"""States of records and fates of recipients, as enums so no such string is spelled twice.

The Lua scripts read them from their prelude (:mod:`outbox.core.store.scripts`), made
from these definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = ["FATE_RANK", "FINAL_STATES", "Fate", "Kind", "State"]


class State(StrEnum):
    #: Recorded and on the queue (or scheduled), not yet attempted.
    QUEUED = "queued"
    #: Claimed by a worker that is talking to the API now.
    SENDING = "sending"
    #: An attempt failed with a retryable error; another is scheduled.
    RETRYING = "retrying"
    #: Waiting for the account's monthly quota: sending it would overdraw what
    #: ``stats/email_cycle`` says is left; it goes when the cycle ends or the allowance
    #: is raised.
    THROTTLED = "throttled"
    #: Accepted by SMTP2GO (recipients it refused are listed as failures).
    SENT = "sent"
    #: Refused for good (a 4xx other than 429, or invalid payload); never retried.
    FAILED = "failed"
    #: Retries exhausted; kept in the dead letters for replay.
    DEAD = "dead"
    #: Held while its send is paused (``outbox.pause``): no thread or task holds it;
    #: ``outbox.resume`` lets it go from where it was.
    PAUSED = "paused"
    #: Taken back before it went out (``outbox.cancel``); never sent afterwards.
    CANCELED = "canceled"


FINAL_STATES = frozenset({State.SENT, State.FAILED, State.DEAD, State.CANCELED})


class Kind(StrEnum):
    #: ``email/send`` with bodies.
    EMAIL = "email"
    #: ``email/send`` with a ``template_id``.
    TEMPLATE = "template"
    #: ``email/mime``.
    MIME = "mime"
    #: ``sms/send``.
    SMS = "sms"


class Fate(StrEnum):
    """Where a recipient stands in its send's ledger.

    A recipient is where its chunk is (queued until the chunk is final, then the chunk's
    final state: ``sent``, ``failed``, ``dead`` or ``canceled``) until a delivery event
    moves it, or it was refused before sending (``suppressed``). An event moves it only
    up its :attr:`rank`.
    """

    QUEUED = "queued"
    #: Its send was canceled before the API accepted its chunk.
    CANCELED = "canceled"
    SENT = "sent"
    #: Steps on the way, not ends: the provider has an email (or an SMS is being sent),
    #: an SMS was handed to the network.
    PROCESSED = "processed"
    SUBMITTED = "submitted"
    SOFT_BOUNCED = "soft-bounced"
    DELIVERED = "delivered"
    HARD_BOUNCED = "hard-bounced"
    REJECTED = "rejected"
    UNSUBSCRIBED = "unsubscribed"
    SPAM = "spam"
    #: Also where an SMS the network could not deliver ends.
    FAILED = "failed"
    DEAD = "dead"
    #: Refused before sending: on the local suppression list.
    SUPPRESSED = "suppressed"

    @property
    def rank(self) -> int:
        """An event moves a recipient from this fate only to one of at least this rank."""
        return FATE_RANK[self]


#: Each fate's rank: a recipient never moves to a lower one (a late ``delivered`` does
#: not undo a hard bounce, a ``processed`` that arrives after ``delivered`` changes
#: nothing), and a recipient the API never got (failed, dead, suppressed) keeps that
#: fate. ``canceled`` ranks with ``queued``: a cancel is outbox's decision, not news of
#: the message, and it only ends a chunk the API had not accepted; an event naming such
#: a recipient means an attempt went out after all (a look-up missed it), and what the
#: provider says of it is the better account.
FATE_RANK: Mapping[Fate, int] = MappingProxyType(
    {
        Fate.QUEUED: 0,
        Fate.CANCELED: 0,
        Fate.SENT: 1,
        Fate.PROCESSED: 2,
        Fate.SUBMITTED: 3,
        Fate.SOFT_BOUNCED: 4,
        Fate.DELIVERED: 5,
        Fate.HARD_BOUNCED: 6,
        Fate.REJECTED: 6,
        Fate.UNSUBSCRIBED: 7,
        Fate.SPAM: 7,
        Fate.FAILED: 9,
        Fate.DEAD: 9,
        Fate.SUPPRESSED: 9,
    }
)
