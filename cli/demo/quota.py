"""The quota phase: the month's allowance runs short while a campaign is queued.

SMTP2GO counts every recipient against a monthly allowance (``stats/email_cycle``).
outbox reads it on a schedule (beat's ``outbox.beat.sync_quota``) and keeps what is
left in Redis; a worker about to send an email its recipients would overdraw it does
not send: the chunk waits ``throttled`` (``outbox quota`` counts them), nothing fails and
nothing is lost. The next read that finds room (a new cycle, a raised allowance)
publishes the waiting chunks again.

The demo plays that after the mix is delivered, with the sandbox's faults off so the
only wait is the quota's: the sandbox's allowance (``cycle_max``) is set to what was
used plus ``left``, fewer than the campaign's recipients; a quota read learns it; the
campaign is queued, and what the allowance does not cover waits ``throttled``. After a
moment the allowance is raised, another read releases the waiting chunks and they are
delivered. The demo reads the quota itself, calling the beat job as beat would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from outbox.cli.demo.mix import PlannedSend
from outbox.cli.demo.watch import Tick, Watch
from outbox.core.states import State
from outbox.core.views import load_record
from outbox.sandbox import SandboxConfig
from outbox.worker.runtime import Runtime

__all__ = ["QuotaPhase", "default_left", "run_quota_phase"]

#: Seconds the throttled chunks are shown waiting before the allowance is raised.
SHOWN_WAITING = 1.0
#: Seconds between two tries at a quota read the fleet's cool-down put off.
READ_RETRY = 0.2


@dataclass
class QuotaPhase:
    """What the quota phase did, for the summary."""

    #: Emails the allowance had left when the campaign was queued.
    left: int
    #: The campaign: its recipients and chunks.
    recipients: int
    chunks: int
    #: Chunks (and their recipients) that waited ``throttled`` for the quota.
    throttled_chunks: int = 0
    throttled_recipients: int = 0
    #: Chunks the read after the raise published again.
    released: int = 0
    #: Every chunk of the campaign ended ``sent``.
    sent: bool = False
    #: The allowance before the phase, while it was short, and once raised.
    used: int = 0
    raised_to: int = 0
    #: Seconds from the campaign's queueing until its last chunk was final.
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Some of the campaign waited for the quota, and once it was raised all went."""
        return self.throttled_chunks > 0 and self.sent

    def as_json(self) -> dict[str, Any]:
        return {
            "left_when_queued": self.left,
            "campaign": {"recipients": self.recipients, "chunks": self.chunks},
            "throttled": {
                "chunks": self.throttled_chunks,
                "recipients": self.throttled_recipients,
            },
            "released": self.released,
            "sent": self.sent,
            "allowance": {"used": self.used, "short": self.used + self.left},
            "raised_to": self.raised_to,
            "seconds": round(self.seconds, 2),
        }


def default_left(recipients: int) -> int:
    """What the allowance has left for a campaign of ``recipients``: half of them, so a
    part goes at once and the rest waits."""
    return recipients // 2


def _read_quota(rt: Runtime, watch: Watch) -> dict[str, Any]:
    """Read the quota by running beat's job, which takes a slot of the shared rate limit
    as a send does (the sandbox counts the read among the sends). A read that the fleet's
    cool-down or a full window puts off is tried again."""
    from outbox.worker.beat import sync_quota

    while True:
        if time.monotonic() > watch.deadline:
            raise TimeoutError("the quota could not be read before the demo's timeout")
        seen = sync_quota()
        if seen is not None:
            return dict(seen)
        time.sleep(READ_RETRY)


def _throttled(rt: Runtime, batch_ids: list[str]) -> list[int]:
    """The recipients of each chunk of these sends waiting for the quota."""
    prefixes = tuple(f"{b}." for b in batch_ids)
    waiting = [c for c in rt.store.account.throttled() if c.startswith(prefixes)]
    return [chunk.n_recipients for chunk, _, _ in rt.store.batches.chunks(waiting)]


def _set_allowance(control: Any, cycle_max: int) -> None:
    control.post("/_sandbox/config", json={"cycle_max": cycle_max}).raise_for_status()


def run_quota_phase(
    rt: Runtime, control: Any, watch: Watch, campaign: PlannedSend, left: int
) -> QuotaPhase:
    """Queue ``campaign`` with ``left`` emails in the allowance, show what waits, raise it."""
    phase = QuotaPhase(left=left, recipients=len(campaign.recipients), chunks=campaign.chunks)
    # The faults are over (a storm cut short, what is left of a burst dropped): the wait
    # shown is the quota's alone.
    over = {"fail_rate": 0, "fail_next": 0, "storm_seconds": 0}
    control.post("/_sandbox/config", json=over).raise_for_status()
    phase.used = int(_read_quota(rt, watch)["cycle_used"])
    _set_allowance(control, phase.used + left)
    _read_quota(rt, watch)
    watch.say(
        f"  [yellow]⏸ {watch.elapsed():4.1f} s[/] quota: {phase.used:,} of the month's "
        f"{phase.used + left:,} emails used, {left:,} left; now the {campaign.group} to "
        f"{phase.recipients:,} ({phase.chunks} chunk{'s' if phase.chunks != 1 else ''})"
    )
    queued = time.monotonic()
    watch.produce([campaign])

    def settled(_tick: Tick) -> bool:
        # Every chunk of the campaign sent or waiting for the quota: nothing else moves.
        return all(
            b.chunks_final + b.throttled >= b.handle.chunks for b in watch.tracked([campaign])
        )

    watch.until(settled)
    sizes = _throttled(rt, [b.handle.id for b in watch.tracked([campaign])])
    phase.throttled_chunks, phase.throttled_recipients = len(sizes), sum(sizes)
    if watch.timed_out:
        return phase
    watch.say(
        f"  [yellow]⏸ {watch.elapsed():4.1f} s[/] {phase.throttled_chunks} chunk(s) to "
        f"{phase.throttled_recipients:,} recipients wait [yellow]throttled[/] for the quota "
        "(outbox quota counts them): nothing failed, nothing is lost"
    )
    watch.pause(SHOWN_WAITING)
    phase.raised_to = max(SandboxConfig().cycle_max, 10 * (phase.used + phase.recipients))
    _set_allowance(control, phase.raised_to)
    phase.released = int(_read_quota(rt, watch).get("released") or 0)
    watch.say(
        f"  [green]▶ {watch.elapsed():4.1f} s[/] allowance raised to {phase.raised_to:,}: "
        f"the next quota read releases {phase.released} chunk(s)"
    )
    watch.until(watch.all_done)
    phase.seconds = time.monotonic() - queued
    records = [load_record(rt.store, b.handle.id) for b in watch.tracked([campaign])]
    phase.sent = bool(records) and all(r is not None and r.state is State.SENT for r in records)
    return phase
