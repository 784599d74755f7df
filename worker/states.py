"""States of records, as one enum so no state string is spelled twice."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL_STATES", "Kind", "State"]


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
