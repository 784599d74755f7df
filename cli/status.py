"""``outbox status`` and ``outbox quota``: what became of a send, and of the account."""

from __future__ import annotations

import textwrap
from typing import Any

import click

from outbox.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    clip,
    columns,
    error_text,
    fail,
    is_time,
    print_json,
    state,
    table,
    when,
)
from outbox.core.states import Fate

__all__ = ["quota", "status"]


def _event_detail(event: dict[str, Any]) -> str:
    """What a delivery event says beyond its name: the bounce's kind and the server's
    words (an SMS event: its status code)."""
    raw = event.get("raw") if isinstance(event.get("raw"), dict) else {}
    parts = [str(event["bounce"])] if event.get("bounce") else []
    for name in ("message", "context", "status_code", "url", "host"):
        value = event.get(name) or (raw.get(name) if raw else None)
        # "Unavailable" is SMTP2GO's word for a context it does not have.
        if value and value != "Unavailable":
            parts.append(clip(str(value).replace("\n", " "), 80))
            break
    return " - ".join(parts)


def _step_extra(name: str, value: Any) -> str:
    """One detail of a history step, times written as every other time is."""
    if is_time(name):
        return f"{name} {when(value)}"
    if name == "retry_in":
        return f"retry in {value:g} s" if isinstance(value, int | float) else f"retry in {value}"
    return f"{name} {value}"


#: How many refused recipients ``outbox status`` lists before pointing at ``--recipients``.
REFUSED_SHOWN = 10


def _nothing_to_send(record: Any) -> bool:
    """Every recipient was refused before sending: the send has no chunk at all."""
    return not record.chunks_total and bool(record.rejected)


def _header(record: Any) -> None:
    title = click.style(f"{record.kind} {record.id}", bold=True)
    # A send with nothing to send is final (``failed`` to ``status()``), but nothing
    # failed: every recipient is suppressed, and that is what it is shown as.
    shown = Fate.SUPPRESSED.value if _nothing_to_send(record) else record.state.value
    click.echo(f"{title}  {state(shown)}")
    counts = ", ".join(f"{n} {s}" for s, n in record.counts.items() if n)
    refused = f", {len(record.rejected):,} refused before sending" if record.rejected else ""
    named = record.recipients + len(record.rejected)
    click.echo(
        f"  recipients {named:,}: {record.recipients_succeeded:,} accepted by the API, "
        f"{record.recipients_failed:,} failed{refused}"
    )
    if record.ledger:
        fates = ", ".join(f"{n} {s}" for s, n in sorted(record.ledger.items()))
        click.echo(f"  recipients by fate: {fates}")
    if _nothing_to_send(record):
        click.echo("  chunks 0: nothing to send, every recipient was refused before sending")
        click.echo(f"  created {when(record.created_at)}")
    else:
        click.echo(f"  chunks {record.chunks_total}: {counts or 'none'}")
        took = (
            f" (took {record.finished_at - record.created_at:.1f} s)"
            if record.finished_at and record.created_at
            else ""
        )
        finished = when(record.finished_at)
        click.echo(f"  created {when(record.created_at)}  finished {finished}{took}")
    if record.send_at:
        click.echo(f"  due {when(record.send_at)}")
    tenant = f"  tenant {record.tenant}" if record.tenant else ""
    click.echo(f"  lane {record.lane}{tenant}")
    if record.idempotency_key:
        click.echo(f"  idempotency key {record.idempotency_key}")
    if record.canceled_at:
        click.echo(f"  canceled {when(record.canceled_at)}")
    if record.paused_at:
        click.echo(
            click.style(f"  PAUSED since {when(record.paused_at)}", fg="yellow", bold=True)
            + f": resume with `outbox resume {record.id}`"
        )
    if record.held:
        click.echo(
            click.style(f"  sending is HELD for the account: {record.held}", fg="red", bold=True)
        )


def _refused(record: Any, width: int) -> None:
    """The recipients refused before sending, each with the reason its ledger entry gives."""
    from outbox.worker.runtime import get_runtime

    entries = [
        e for e in get_runtime().store.batches.ledger(record.id) if e.chunk is None and e.reason
    ]
    why = {e.recipient: e.reason for e in entries}
    rows = [
        [address, state(Fate.SUPPRESSED), why.get(address) or why.get(_ledger_key(address)) or ""]
        for address in record.rejected[:REFUSED_SHOWN]
    ]
    click.echo(click.style(f"refused before sending ({len(record.rejected):,})", bold=True))
    click.echo(table(["recipient", "state", "why"], rows, width=width))
    more = len(record.rejected) - REFUSED_SHOWN
    if more > 0:
        click.echo(
            click.style(
                f"  ... and {more:,} more: outbox status {record.id} --recipients "
                "--state suppressed",
                dim=True,
            )
        )


def _ledger_key(address: str) -> str:
    """The address alone, lower case: how the ledger keys recipients it was sent to."""
    from outbox.chunking import address_key

    return address_key(address)


#: What the summary shows of a send: its first chunks, the chunks in trouble (that
#: many more at most) and its newest delivery events; the options list the rest.
FIRST_CHUNKS = 5
PROBLEM_CHUNKS = 10
LATEST_EVENTS = 10
#: Chunk states the summary shows wherever the chunk is in the send.
_PROBLEMS = ("failed", "dead", "retrying")
#: Addresses of a ``processed`` event's list named before "+N more".
_NAMED = 2


def _dim(text: str, width: int) -> None:
    """A hint, wrapped to the line's width (a command in it is never cut)."""
    for line in textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="    "):
        click.echo(click.style(line, dim=True))


def _chunk_row(chunk: Any) -> list[str]:
    notes = list(chunk.notes)
    if chunk.failures:
        notes.append(f"API: {'; '.join(chunk.failures[:2])}")
    if chunk.replays:
        notes.append(f"replayed {chunk.replays}x")
    if chunk.waiting:
        notes.append("waiting for a rate-limit slot")
    if chunk.ambiguous and chunk.ambiguous not in notes:
        notes.append(chunk.ambiguous)
    ident = chunk.email_id or (f"{len(chunk.message_ids)} SMS ids" if chunk.message_ids else "")
    return [
        chunk.id,
        state(chunk.state.value),
        str(chunk.attempts),
        str(len(chunk.recipients)),
        ident,
        error_text(chunk.last_error) if chunk.state.value != "sent" else "",
        "; ".join(notes),
    ]


def _chunk_table(chunks: list[Any], width: int) -> str:
    return table(
        ["chunk", "state", "attempts", "recipients", "email_id", "last error", "notes"],
        [_chunk_row(chunk) for chunk in chunks],
        width=width,
    )


def _history(chunks: list[Any], width: int) -> None:
    for chunk in chunks:
        click.echo(click.style(chunk.id, bold=True))
        for step in chunk.history:
            extra = ", ".join(
                _step_extra(k, v) for k, v in step.items() if k not in {"at", "state", "error"}
            )
            error = error_text(step.get("error"))
            line = f"  {when(step.get('at'))}  {state(str(step.get('state', '')))}  {extra}"
            click.echo(clip(line + (f"  {error}" if error else ""), width))


def _picked(chunks: list[Any]) -> list[Any]:
    """The chunks the summary shows: the first few, then those in trouble (capped)."""
    first = chunks[:FIRST_CHUNKS]
    trouble = [c for c in chunks[FIRST_CHUNKS:] if c.state.value in _PROBLEMS]
    return first + trouble[:PROBLEM_CHUNKS]


def _received(event: dict[str, Any]) -> float:
    """When an event came in: how a record's events are ordered (as the store orders them)."""
    value = event.get("received_at")
    return float(value) if isinstance(value, int | float) else 0.0


def _who(event: dict[str, Any], first: str | None = None) -> str:
    """The recipient an event names; a ``processed`` event's list as its first addresses
    and how many more (``first``, the recipient asked about, leads when it is listed)."""
    if event.get("rcpt"):
        return str(event["rcpt"])
    listed = [str(a) for a in event.get("recipients") or []]
    if first is not None:
        listed.sort(key=lambda a: _ledger_key(a) != first)
    more = len(listed) - _NAMED
    return ", ".join(listed[:_NAMED]) + (f" +{more:,} more" if more > 0 else "")


def _event_table(events: list[dict[str, Any]], width: int, first: str | None = None) -> str:
    # The event's own time (SMTP2GO's, in UTC) when it has one, else when it came in.
    rows = [
        [
            when(event.get("time") or event.get("received_at")),
            str(event.get("event") or ""),
            _who(event, first),
            _event_detail(event),
        ]
        for event in events
    ]
    return table(["time", "event", "recipient", "detail"], rows, width=width)


def _names(event: dict[str, Any], key: str) -> bool:
    """Does the event name the recipient whose ledger key is ``key`` (its ``rcpt``, or
    one of a ``processed`` event's ``recipients``; an SMS number by its digits)?"""
    named = [str(n) for n in (event.get("rcpt"), *(event.get("recipients") or [])) if n]
    if event.get("channel") == "sms":
        digits = "".join(filter(str.isdigit, key))
        return bool(digits) and any("".join(filter(str.isdigit, n)) == digits for n in named)
    return any(_ledger_key(n) == key for n in named)


def _summary(record: Any, width: int) -> None:
    """A send as it fits a terminal, whatever its size: the header, some chunks, the
    newest events, and the options that show the rest."""
    _header(record)
    if record.rejected:
        _refused(record, width)
    chunks = record.chunks
    if chunks:
        picked = _picked(chunks)
        click.echo(_chunk_table(picked, width))
        hidden = len(chunks) - len(picked)
        if hidden:
            trouble = sum(c.state.value in _PROBLEMS for c in chunks)
            unseen = trouble - sum(c.state.value in _PROBLEMS for c in picked)
            also = (
                f" ({unseen:,} of them failed, dead or retrying: add "
                + " ".join(f"--state {s}" for s in _PROBLEMS)
                + ")"
                if unseen
                else ""
            )
            _dim(f"... {hidden:,} more chunks: outbox status {record.id} --chunks{also}", width)
    if not _nothing_to_send(record):  # no event will ever come for it
        events = sorted(record.events, key=_received)
        if not events:
            click.echo(click.style("  no delivery events yet", dim=True))
        else:
            latest = events[-LATEST_EVENTS:]
            shown = f", the latest {len(latest)}" if len(latest) < len(events) else ""
            click.echo(click.style(f"delivery events ({len(events):,}{shown})", bold=True))
            click.echo(_event_table(latest, width))
    _dim(
        f"more: outbox status {record.id} --chunks [--history] | --events | "
        "--recipient ADDR | --recipients | --json",
        width,
    )
    _dim(
        "(--limit N --offset N page the lists; --state S picks chunks or recipients by state)",
        width,
    )


def _page(items: list[Any], offset: int, limit: int | None) -> list[Any]:
    return items[offset : None if limit is None else offset + limit]


def _showing(what: str, offset: int, shown: int, total: int, width: int) -> None:
    """Which part of a listing was printed, and how to ask for the next part."""
    if not shown:
        _dim(f"showing none of {total:,} {what} (offset {offset:,})", width)
        return
    after = offset + shown
    more = f"; next: --offset {after}" if after < total else ""
    _dim(f"showing {offset + 1:,}\u2013{after:,} of {total:,} {what}{more}", width)


def _chunk_list(
    record: Any,
    states: tuple[str, ...],
    history: bool,
    page: tuple[int, int | None],
    as_json: bool,
    width: int,
) -> None:
    """Every chunk of a send (those in ``states``), a page at a time."""
    from outbox.core.states import State

    known = {s.value for s in State}
    for name in states:
        if name not in known:
            fail(
                f"--state {name!r} is not a chunk state ({', '.join(sorted(known))})",
                EXIT_USAGE,
                as_json=as_json,
            )
    chunks = [c for c in record.chunks if not states or c.state.value in states]
    shown = _page(chunks, *page)
    if as_json:
        print_json([c.model_dump(mode="json") for c in shown])
        return
    if not chunks:
        click.echo("no chunk in that state" if states else "no chunks: nothing was sent")
        return
    only = f" ({', '.join(states)})" if states else ""
    click.echo(click.style(f"chunks of {record.id}{only}", bold=True))
    if shown:
        click.echo(_chunk_table(shown, width))
    if history:
        _history(shown, width)
    _showing("chunks", page[0], len(shown), len(chunks), width)


def _event_list(record: Any, page: tuple[int, int | None], as_json: bool, width: int) -> None:
    """Every delivery event of a send, oldest first, a page at a time."""
    events = sorted(record.events, key=_received)
    shown = _page(events, *page)
    if as_json:
        print_json(shown)
        return
    if not events:
        click.echo("no delivery events yet")
        return
    click.echo(click.style(f"delivery events of {record.id}", bold=True))
    if shown:
        click.echo(_event_table(shown, width))
    _showing("events", page[0], len(shown), len(events), width)


def _one_recipient(record: Any, address: str, as_json: bool, width: int) -> None:
    """One recipient's fate, its chunk, and the delivery events that name it."""
    from outbox.core.store.chunks import chunk_id_for
    from outbox.core.views import load_chunk
    from outbox.worker.runtime import get_runtime

    key = _ledger_key(address)
    store = get_runtime().store
    entry = next((e for e in store.batches.ledger(record.id) if e.recipient == key), None)
    if entry is None:
        fail(
            f"no recipient {address!r} in send {record.id}",
            EXIT_FAILED,
            as_json=as_json,
            id=record.id,
        )
    chunk = None
    if entry.chunk is not None:
        chunk_id = chunk_id_for(record.id, entry.chunk)
        chunk = next((c for c in record.chunks if c.id == chunk_id), None) or load_chunk(
            store, chunk_id
        )
    events = sorted((e for e in chunk.events if _names(e, key)), key=_received) if chunk else []
    if as_json:
        print_json(
            {
                "recipient": entry.recipient,
                "state": entry.state,
                "chunk": entry.chunk,
                "chunk_id": chunk.id if chunk else None,
                "reason": entry.reason,
                "events": events,
            }
        )
        return
    why = f"  {entry.reason}" if entry.reason else ""
    click.echo(clip(f"{click.style(entry.recipient, bold=True)}  {state(entry.state)}{why}", width))
    if chunk is None:
        click.echo(click.style("  refused before sending: no chunk, no events", dim=True))
        return
    click.echo(_chunk_table([chunk], width))
    if not events:
        click.echo(click.style("  no delivery events name it yet", dim=True))
        return
    click.echo(click.style(f"delivery events naming it ({len(events):,})", bold=True))
    click.echo(_event_table(events, width, first=key))


def _recipients(
    record_id: str,
    wanted: tuple[str, ...],
    page: tuple[int, int | None],
    as_json: bool,
    width: int,
) -> None:
    from outbox.core.store.chunks import batch_id_of
    from outbox.worker.runtime import get_runtime

    entries = get_runtime().store.batches.ledger(batch_id_of(record_id))
    rows = sorted(
        (e for e in entries if not wanted or e.state in wanted),
        key=lambda e: (e.chunk if e.chunk is not None else -1, e.recipient),
    )
    shown = _page(rows, *page)
    if as_json:
        print_json(
            [
                {"recipient": e.recipient, "state": e.state, "chunk": e.chunk, "reason": e.reason}
                for e in shown
            ]
        )
        return
    if not rows:
        click.echo("no recipient in that state" if wanted else "no recipients recorded")
        return
    if shown:
        click.echo(
            table(
                ["recipient", "state", "chunk", "why"],
                [
                    [
                        e.recipient,
                        state(e.state),
                        "" if e.chunk is None else str(e.chunk),
                        e.reason or "",
                    ]
                    for e in shown
                ],
                width=width,
            )
        )
    if page != (0, None):
        _showing("recipients", page[0], len(shown), len(rows), width)


@click.command()
@click.argument("record_id", metavar="ID")
@click.option("--chunks", "all_chunks", is_flag=True, help="List every chunk instead.")
@click.option("--history", is_flag=True, help="List every chunk with its transitions.")
@click.option("--events", "all_events", is_flag=True, help="List every delivery event instead.")
@click.option(
    "--recipient",
    "address",
    metavar="ADDR",
    help="One recipient's fate, its chunk and the events that name it instead.",
)
@click.option("--recipients", is_flag=True, help="List every recipient and its fate instead.")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="With --recipients: only these fates (sent, delivered, failed, hard-bounced, ...); "
    "with --chunks: only chunks in these states (failed, dead, retrying, ...).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --chunks, --events or --recipients: list at most N.",
)
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="With --chunks, --events or --recipients: skip the first N.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def status(
    record_id: str,
    all_chunks: bool,
    history: bool,
    all_events: bool,
    address: str | None,
    recipients: bool,
    states: tuple[str, ...],
    limit: int | None,
    offset: int,
    as_json: bool,
) -> None:
    """Show a send's record: ID is a batch id, or a chunk id (BATCH.N).

    By default a summary that fits a terminal: the counts, the first chunks and those
    failed, dead or retrying, the newest delivery events.
    """
    from outbox import RecordNotFound
    from outbox import status as load

    all_chunks = all_chunks or history
    views = sum((all_chunks, all_events, address is not None, recipients))
    if views > 1:
        fail(
            "give one of --chunks (or --history), --events, --recipient, --recipients",
            EXIT_USAGE,
            as_json=as_json,
        )
    if states and not (all_chunks or recipients):
        fail("--state goes with --chunks or --recipients", EXIT_USAGE, as_json=as_json)
    page = (offset, limit)
    if page != (0, None) and not (all_chunks or all_events or recipients):
        fail(
            "--limit and --offset page --chunks, --events or --recipients",
            EXIT_USAGE,
            as_json=as_json,
        )
    try:
        record = load(record_id)
    except RecordNotFound as exc:
        fail(str(exc), EXIT_FAILED, as_json=as_json, id=record_id)
    width = columns()
    if recipients:
        _recipients(record.id, states, page, as_json, width)
    elif address is not None:
        _one_recipient(record, address, as_json, width)
    elif all_chunks:
        _chunk_list(record, states, history, page, as_json, width)
    elif all_events:
        _event_list(record, page, as_json, width)
    elif as_json:
        data = record.model_dump(mode="json")
        data["done"] = record.done
        data["attempts"] = record.attempts
        print_json(data)
    else:
        _summary(record, width)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the quota as JSON.")
def quota(as_json: bool) -> None:
    """Show the account's monthly quota as last read, and what waits for it."""
    from outbox.worker.runtime import get_runtime

    rt = get_runtime()
    account = rt.store.account
    seen = account.quota()
    left, waiting = account.quota_left(), account.throttled_count()
    held = rt.store.limits.hold_reason()
    denied = "stats/email_cycle" in account.denials(rt.store.now())
    if as_json:
        print_json(
            {"quota": seen, "left": left, "throttled": waiting, "held": held, "denied": denied}
        )
        return
    if denied:
        click.echo(
            click.style("the quota is unknown", fg="yellow", bold=True)
            + ": the API key may not call stats/email_cycle (add /stats/email_cycle to its "
            "permissions in SMTP2GO; outbox checks again within the hour)"
        )
    elif seen is None:
        click.echo("the quota has not been read yet (the beat job outbox.beat.sync_quota reads it)")
    else:
        click.echo(
            f"cycle {when(seen.get('cycle_start'))} to {when(seen.get('cycle_end'))}: "
            f"{seen.get('cycle_used', '?')} used of {seen.get('cycle_max', '?')}, "
            f"{seen.get('cycle_remaining', '?')} remaining (read {when(seen.get('read_at'))})"
        )
        if seen.get("plan"):  # reads before the plan was recorded have none
            ceiling = "300 %, overage charged past 100 %" if seen["plan"] == "paid" else "100 %"
            click.echo(f"plan {seen['plan']} (OUTBOX_QUOTA_PLAN): sends up to {ceiling}")
    if left is not None:
        click.echo(f"left for sending until the cycle ends: {left}")
    if waiting:
        click.echo(
            click.style(f"{waiting} chunk(s) throttled", fg="yellow", bold=True)
            + ": they go when a quota read finds room (a new cycle, a raised allowance)"
        )
    if held:
        click.echo(click.style(f"sending is HELD: {held}", fg="red", bold=True))


@click.command("cancel")
@click.argument("record_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record afterwards as JSON.")
def cancel_command(record_id: str, as_json: bool) -> None:
    """Cancel a send (or one chunk, BATCH.N): what has not gone out never goes; a chunk
    in flight ends as its answer says."""
    from outbox import cancel

    def summary(record: Any, counts: dict[str, int]) -> str:
        gone = sum(counts.get(s, 0) for s in ("sent", "failed", "dead"))
        return (
            f"{record.id}: {counts.get('canceled', 0)} chunk(s) canceled, {gone} had gone "
            f"already, {counts.get('sending', 0)} in flight (each ends as its answer says)"
        )

    _control(cancel, record_id, as_json, summary, who="outbox cancel")


@click.command("pause")
@click.argument("record_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record afterwards as JSON.")
def pause_command(record_id: str, as_json: bool) -> None:
    """Pause a send: what has not gone out waits, holding no worker, until `outbox resume`;
    a chunk in flight ends as its answer says."""
    from outbox import pause

    _control(pause, record_id, as_json, _held_summary, who="outbox pause")


@click.command("resume")
@click.argument("record_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the record afterwards as JSON.")
def resume_command(record_id: str, as_json: bool) -> None:
    """Resume a paused send: each paused chunk goes on from where it was, in its lane."""
    from outbox import resume

    _control(resume, record_id, as_json, _held_summary)


def _held_summary(record: Any, counts: dict[str, int]) -> str:
    gone = sum(counts.get(s, 0) for s in ("sent", "failed", "dead", "canceled"))
    return (
        f"{record.id}: {record.state.value}; {counts.get('paused', 0)} chunk(s) paused, "
        f"{gone} had gone already, {counts.get('sending', 0)} in flight"
    )


def _control(call: Any, record_id: str, as_json: bool, summary: Any, **kwargs: Any) -> None:
    """Run a control call on ``record_id``: the record as JSON, or ``summary``'s line."""
    from outbox import RecordNotFound

    try:
        record = call(record_id, **kwargs)
    except RecordNotFound as exc:
        fail(str(exc), EXIT_FAILED, as_json=as_json, id=record_id)
    if as_json:
        print_json(record.model_dump(mode="json"))
        return
    click.echo(summary(record, {s: n for s, n in record.counts.items() if n}))


@click.command("erase")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the count as JSON.")
def erase_command(address: str, as_json: bool) -> None:
    """Remove one person's email address or phone number from every record outbox keeps
    (a suppressed address stays suppressed, unreadable)."""
    from outbox import erase
    from outbox.core.smtp2go.checks import address_key
    from outbox.worker.runtime import get_runtime

    changed = erase(address)
    target = address_key(address) if "@" in address else address.strip()
    at_smtp2go = get_runtime().store.suppressions.erased_note(target) or ""
    if as_json:
        print_json({"address_erased": True, "places": changed, "smtp2go": at_smtp2go})
        return
    click.echo(f"erased from {changed} place(s); at SMTP2GO: {at_smtp2go}")
