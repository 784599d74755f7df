"""``outbox status`` and ``outbox quota``: what became of a send, and of the account."""

from __future__ import annotations

from typing import Any

import click

from outbox.cli.output import EXIT_FAILED, error_text, fail, is_time, print_json, state, table, when

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
            parts.append(str(value).replace("\n", " ")[:80])
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
    shown = "suppressed" if _nothing_to_send(record) else record.state.value
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


def _refused(record: Any) -> None:
    """The recipients refused before sending, each with the reason its ledger entry gives."""
    from outbox.worker.runtime import get_runtime

    entries = [
        e for e in get_runtime().store.batches.ledger(record.id) if e.chunk is None and e.reason
    ]
    why = {e.recipient: e.reason for e in entries}
    rows = [
        [address, state("suppressed"), why.get(address) or why.get(_ledger_key(address)) or ""]
        for address in record.rejected[:REFUSED_SHOWN]
    ]
    click.echo(click.style(f"refused before sending ({len(record.rejected):,})", bold=True))
    click.echo(table(["recipient", "state", "why"], rows))
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


def _chunks(record: Any, history: bool) -> None:
    if record.rejected:
        _refused(record)
    if not record.chunks:
        return
    rows = []
    for chunk in record.chunks:
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
        rows.append(
            [
                chunk.id,
                state(chunk.state.value),
                str(chunk.attempts),
                str(len(chunk.recipients)),
                ident,
                error_text(chunk.last_error) if chunk.state.value != "sent" else "",
                "; ".join(notes),
            ]
        )
    click.echo(
        table(["chunk", "state", "attempts", "recipients", "email_id", "last error", "notes"], rows)
    )
    if history:
        for chunk in record.chunks:
            click.echo(click.style(chunk.id, bold=True))
            for step in chunk.history:
                extra = ", ".join(
                    _step_extra(k, v) for k, v in step.items() if k not in {"at", "state", "error"}
                )
                error = error_text(step.get("error"))
                line = f"  {when(step.get('at'))}  {state(str(step.get('state', '')))}  {extra}"
                click.echo(line + (f"  {error}" if error else ""))


def _events(record: Any) -> None:
    events = record.events
    if not events:
        click.echo(click.style("  no delivery events yet", dim=True))
        return
    # The event's own time (SMTP2GO's, in UTC) when it has one, else when it came in.
    rows = [
        [
            when(event.get("time") or event.get("received_at")),
            str(event.get("event") or ""),
            str(event.get("rcpt") or ", ".join(event.get("recipients") or [])),
            _event_detail(event),
        ]
        for event in events
    ]
    click.echo(click.style(f"delivery events ({len(events)})", bold=True))
    click.echo(table(["time", "event", "recipient", "detail"], rows))


def _recipients(record_id: str, wanted: tuple[str, ...], as_json: bool) -> None:
    from outbox.worker.runtime import get_runtime

    entries = get_runtime().store.batches.ledger(
        record_id.rsplit(".", 1)[0] if "." in record_id else record_id
    )
    rows = sorted(
        (e for e in entries if not wanted or e.state in wanted),
        key=lambda e: (e.chunk if e.chunk is not None else -1, e.recipient),
    )
    if as_json:
        print_json(
            [
                {"recipient": e.recipient, "state": e.state, "chunk": e.chunk, "reason": e.reason}
                for e in rows
            ]
        )
        return
    if not rows:
        click.echo("no recipient in that state" if wanted else "no recipients recorded")
        return
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
                for e in rows
            ],
        )
    )


@click.command()
@click.argument("record_id", metavar="ID")
@click.option("--history", is_flag=True, help="Also show each chunk's transitions.")
@click.option("--recipients", is_flag=True, help="List every recipient and its fate instead.")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help="With --recipients: only these fates (sent, delivered, failed, hard-bounced, ...).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def status(
    record_id: str, history: bool, recipients: bool, states: tuple[str, ...], as_json: bool
) -> None:
    """Show a send's record: ID is a batch id, or a chunk id (BATCH.N)."""
    from outbox import RecordNotFound
    from outbox import status as load

    try:
        record = load(record_id)
    except RecordNotFound as exc:
        fail(str(exc), EXIT_FAILED, as_json=as_json, id=record_id)
    if recipients:
        _recipients(record.id, states, as_json)
        return
    if as_json:
        data = record.model_dump(mode="json")
        data["done"] = record.done
        data["attempts"] = record.attempts
        print_json(data)
        return
    _header(record)
    _chunks(record, history)
    if not _nothing_to_send(record):  # no event will ever come for it
        _events(record)


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

    changed = erase(address)
    if as_json:
        print_json({"address_erased": True, "places": changed})
        return
    click.echo(f"erased from {changed} place(s)")
