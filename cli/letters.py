"""Chunks that ended without being sent: list them, put them back, send again.

``outbox dead list`` / ``outbox dead replay`` are about chunks whose retries ran out;
``outbox replay`` also takes ``failed`` chunks (refused by the API: a wrong key, an
unverified sender, fixed since), by id or by error code; a chunk that was sent is never
replayed. ``outbox retry-failed`` sends one new batch to the recipients of a send worth
another try (see :func:`outbox.retry_failed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from outbox.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    columns,
    error_text,
    fail,
    print_json,
    table,
    when,
)

__all__ = ["dead", "replay", "retry_failed"]


def _letters(states: Sequence[str], limit: int) -> list[tuple[str, float]]:
    from outbox.worker.runtime import get_runtime

    batches = get_runtime().store.batches
    rows: list[tuple[str, float]] = []
    if "dead" in states:
        rows += batches.dead_letters(limit=limit)
    if "failed" in states:
        rows += batches.failed_letters(limit=limit)
    return sorted(rows, key=lambda row: row[1])


def _rows(letters: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    from outbox.worker.runtime import get_runtime

    # One pipeline for every chunk, not a round trip each.
    found = {c.id: c for c, _, _ in get_runtime().store.batches.chunks([i for i, _ in letters])}
    rows = []
    for chunk_id, when_ in letters:
        chunk = found.get(chunk_id)
        rows.append(
            {
                "id": chunk_id,
                "died_at": when_,
                "state": chunk.state.value if chunk else "",
                "kind": chunk.kind.value if chunk else "",
                "recipients": chunk.n_recipients if chunk else 0,
                "attempts": chunk.attempts if chunk else 0,
                "replays": chunk.replays if chunk else 0,
                "last_error": chunk.last_error if chunk else None,
                "expired": chunk is None,
            }
        )
    return rows


def _show(rows: list[dict[str, Any]], title: str, hint: str) -> None:
    if not rows:
        click.echo(click.style(f"no {title}", fg="green"))
        return
    click.echo(click.style(f"{title} ({len(rows)})", bold=True))
    click.echo(
        table(
            ["chunk", "when", "state", "kind", "recipients", "attempts", "replays", "last error"],
            [
                [
                    r["id"],
                    when(r["died_at"]),
                    r["state"] or "expired",
                    r["kind"],
                    str(r["recipients"]),
                    str(r["attempts"]),
                    str(r["replays"]),
                    error_text(r["last_error"]),
                ]
                for r in rows
            ],
            width=columns(),
        )
    )
    click.echo(click.style(hint, dim=True))


def _matches(error: dict[str, Any] | None, code: str) -> bool:
    """An error code given on the command line matches the API's code (with or without
    its ``E_ApiResponseCodes.`` prefix) or the error's type."""
    if not error:
        return False
    wanted = code.lower()
    seen = [str(error.get("error_code") or ""), str(error.get("type") or "")]
    return any(s.lower() == wanted or s.lower().endswith("." + wanted) for s in seen if s)


def _choose(ids: Sequence[str], states: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Chunk ids to replay for the ids given (a batch id means its chunks in ``states``)."""
    from outbox.core.views import load_record
    from outbox.worker.runtime import get_runtime

    store = get_runtime().store
    chosen: list[str] = []
    skipped: list[dict[str, str]] = []
    wanted = " or ".join(states)
    for ident in ids:
        chunk = store.batches.chunk(ident) if "." in ident else None
        if chunk is not None:
            if chunk.state.value in states:
                chosen.append(ident)
            else:
                skipped.append({"id": ident, "reason": f"not {wanted} (state {chunk.state.value})"})
            continue
        record = load_record(store, ident)
        if record is None:
            skipped.append({"id": ident, "reason": "unknown id (or expired)"})
            continue
        found = [c.id for c in record.chunks if c.state.value in states]
        chosen += found
        if not found:
            skipped.append({"id": ident, "reason": f"no {wanted} chunk (batch is {record.state})"})
    return list(dict.fromkeys(chosen)), skipped


def _replay(
    chosen: Sequence[str], states: Sequence[str], who: str
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    from outbox.core.states import State
    from outbox.worker.celery_app import app
    from outbox.worker.publish import chunk_task, publish
    from outbox.worker.runtime import get_runtime

    store = get_runtime().store
    replayed: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    if not chosen:
        return replayed, skipped
    # Reach the broker before changing any record: a chunk moved back to ``queued`` but
    # never published would wait for the stuck sweep.
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=2, interval_start=0.2)
    allowed = [State(s) for s in states]
    for chunk_id in chosen:
        task = chunk_task(store.batches, chunk_id)
        if task is None:
            skipped.append({"id": chunk_id, "reason": "expired"})
            continue
        if not store.batches.replay(chunk_id, who=who, states=allowed):
            skipped.append({"id": chunk_id, "reason": f"no longer {' or '.join(states)}"})
            continue
        publish([task], store=store)
        replayed.append({"id": chunk_id, "task": task.name.value, "queue": task.queue.value})
    return replayed, skipped


def _report(replayed: list[dict[str, str]], skipped: list[dict[str, str]], as_json: bool) -> None:
    if as_json:
        print_json({"replayed": replayed, "skipped": skipped})
    else:
        for row in replayed:
            click.echo(f"{click.style('replayed', fg='green')} {row['id']} -> queue {row['queue']}")
        for row in skipped:
            click.echo(
                f"{click.style('skipped', fg='yellow')} {row['id']}: {row['reason']}", err=True
            )
        if not replayed and not skipped:
            click.echo(click.style("nothing to replay", fg="green"))
    if skipped and not replayed:
        raise click.exceptions.Exit(EXIT_FAILED)


@click.group()
def dead() -> None:
    """Chunks whose retries ran out: list them, replay them."""


@dead.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def dead_list(limit: int, as_json: bool) -> None:
    """List dead chunks, newest last."""
    rows = _rows(_letters(["dead"], limit))
    if as_json:
        print_json(rows)
    else:
        _show(rows, "dead letters", "replay with: outbox dead replay ID... (or --all)")


@dead.command("replay")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead chunk.")
@click.option("--json", "as_json", is_flag=True, help="Print what was replayed as JSON.")
def dead_replay(ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Put dead chunks back on their queue (attempts start again).

    An ID is a chunk id, or a batch id for all of its dead chunks.
    """
    if bool(ids) == replay_all:
        fail("give chunk or batch ids, or --all (not both)", EXIT_USAGE, as_json=as_json)
    skipped: list[dict[str, str]] = []
    if replay_all:
        chosen = [c for c, _ in _letters(["dead"], 100_000)]
    else:
        chosen, skipped = _choose(ids, ["dead"])
    replayed, more = _replay(chosen, ["dead"], "outbox dead replay")
    _report(replayed, skipped + more, as_json)


@click.command()
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--error-code",
    metavar="CODE",
    help="Every failed or dead chunk whose error has this code (ENDPOINT_PERMISSION_DENIED, "
    "UnauthorizedError, Refused, ...).",
)
@click.option(
    "--state",
    "states",
    type=click.Choice(["failed", "dead"]),
    multiple=True,
    help="Only chunks in this state (default: failed and dead).",
)
@click.option(
    "--list", "only_list", is_flag=True, help="Show what would be replayed; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def replay(
    ids: tuple[str, ...],
    error_code: str | None,
    states: tuple[str, ...],
    only_list: bool,
    as_json: bool,
) -> None:
    """Put failed or dead chunks back on their queue, by id (chunk or batch) or by error
    code. A chunk that was sent is never replayed."""
    kinds = list(states) or ["failed", "dead"]
    if bool(ids) == bool(error_code):
        fail("give chunk or batch ids, or --error-code (not both)", EXIT_USAGE, as_json=as_json)
    skipped: list[dict[str, str]] = []
    if error_code:
        rows = [r for r in _rows(_letters(kinds, 100_000)) if _matches(r["last_error"], error_code)]
        chosen = [r["id"] for r in rows]
    else:
        chosen, skipped = _choose(ids, kinds)
    if only_list:
        rows = _rows([(c, 0.0) for c in chosen])
        if as_json:
            print_json(rows)
        else:
            _show(rows, "chunks to replay", "replay them: the same command without --list")
        return
    replayed, more = _replay(chosen, kinds, "outbox replay")
    _report(replayed, skipped + more, as_json)


@click.command("retry-failed")
@click.argument("record_id", metavar="ID")
@click.option(
    "--idempotency-key", default=None, help="Running it again with the same key queues nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the new handle as JSON.")
def retry_failed(record_id: str, idempotency_key: str | None, as_json: bool) -> None:
    """Send again to the recipients of send ID whose request failed or died, or who
    soft-bounced, in one new batch; never to those delivered, suppressed, hard-bounced
    or complained."""
    from outbox import RecordNotFound
    from outbox import retry_failed as again

    try:
        handle = again(record_id, idempotency_key=idempotency_key)
    except RecordNotFound as exc:
        fail(str(exc), EXIT_FAILED, as_json=as_json, id=record_id)
    if handle is None:
        if as_json:
            print_json({"retried": None})
        click.echo("nobody to try again: no recipient failed, died or soft-bounced", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)
    if as_json:
        print_json(
            {
                "id": handle.id,
                "recipients": handle.recipients,
                "chunks": handle.chunks,
                "rejected": list(handle.rejected),
            }
        )
        return
    click.echo(handle.id)
    click.echo(
        f"{handle.recipients} recipient(s) queued again. Follow it: outbox status {handle.id}",
        err=True,
    )
