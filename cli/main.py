"""The ``outbox`` command line: the demo, the sandbox, records, dead letters, quick sends.

Exit codes, the same for every command, so scripts can tell failures apart:

====  ====================================================================
0     done
1     not found, nothing to do, or the demo's outcome was not what it should be
2     bad input: a usage error, an invalid message (each bad field is named on
      stderr), a bad setting
3     Redis (``OUTBOX_REDIS_URL``) or the broker (``CELERY_BROKER_URL``) unreachable
====  ====================================================================

``--json`` prints one JSON document on stdout and nothing else there; errors go to
stderr either way. The API key is never printed, and passwords in URLs are masked.
Configuration is the environment (and ``.env``), read through ``worker.settings``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from outbox.sandbox.command import sandbox as sandbox_command

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

_STATE_STYLE = {
    "queued": "cyan",
    "sending": "blue",
    "retrying": "yellow",
    "sent": "green",
    "failed": "red",
    "dead": "bold red",
}


#: Width when stdout is not a terminal: wide enough for a table of full chunk ids.
PIPE_WIDTH = 120


def _out() -> Console:
    # Built per call: click's test runner swaps sys.stdout for each invocation.
    console = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


def _err() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    _err().print(f"[bold red]outbox:[/] {escape(message)}")
    raise click.exceptions.Exit(code)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _masked(url: str) -> str:
    from outbox.cli.demo.stack import redacted_url

    return redacted_url(url)


def _configured(name: str) -> str:
    """A URL setting for an error message (the installed runtime's, when there is one)."""
    try:
        from outbox.worker.runtime import get_runtime

        settings = get_runtime().settings
    except Exception:
        return "?"
    return _masked(str(getattr(settings, name)))


class OutboxGroup(click.Group):
    """Turns the failures every command can meet into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        import redis
        from kombu.exceptions import OperationalError
        from pydantic import ValidationError as SettingsError

        from outbox.worker.settings import MissingAPIKeyError

        try:
            return super().invoke(ctx)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            _fail(
                f"cannot reach Redis at {_configured('redis_url')} (OUTBOX_REDIS_URL): {exc}",
                EXIT_UNREACHABLE,
            )
        except OperationalError as exc:
            _fail(
                f"cannot reach the broker at {_configured('celery_broker_url')} "
                f"(CELERY_BROKER_URL): {exc}",
                EXIT_UNREACHABLE,
            )
        except SettingsError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            _fail(f"bad configuration: {problems}", EXIT_USAGE)
        except MissingAPIKeyError as exc:
            _fail(str(exc), EXIT_USAGE)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("outbox")
    except PackageNotFoundError:  # run from a checkout without ``pip install -e .``
        return "unknown (not installed)"


@click.group(cls=OutboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="outbox")
def main() -> None:
    """outbox: an outbound-messaging queue for SMTP2GO (email, MIME, templates, SMS)."""


# -- demo ---------------------------------------------------------------------------------


def _storms(_ctx: click.Context, _param: click.Parameter, text: str) -> tuple[int, float]:
    """``N`` or ``NxSECONDS`` (``2x0.5``): how many 429 storms and how long each lasts."""
    count, _, seconds = text.lower().partition("x")
    try:
        storms, length = int(count), float(seconds or 0.5)
    except ValueError:
        raise click.BadParameter(f"expected N or NxSECONDS (e.g. 2x0.5), not {text!r}") from None
    if storms < 0 or not 0 < length <= 10:
        raise click.BadParameter("storms must be >= 0 and last 0 to 10 seconds")
    return storms, length


def _sandbox_rate(_ctx: click.Context, _param: click.Parameter, text: str) -> str:
    """The sandbox's own rate notation (``10/s``, ``600/m``, ``0`` for none)."""
    from outbox.sandbox import parse_rate

    try:
        parse_rate(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return text


@main.command()
@click.option(
    "--recipients",
    type=click.IntRange(min=400),
    default=3000,
    show_default=True,
    help="Recipients in the mix (bad and suppressed ones included).",
)
@click.option(
    "--rate",
    default="50/s",
    show_default=True,
    callback=_sandbox_rate,
    help="The sandbox's rate limit (10/s, 600/m; 0 = none); outbox's is set 10% under.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 0.5),
    default=0.05,
    show_default=True,
    help="Share of API requests the sandbox answers 500/502/503.",
)
@click.option(
    "--burst-429",
    "burst_429",
    default="2x0.5",
    show_default=True,
    callback=_storms,
    help="429 storms during the run: N or NxSECONDS.",
)
@click.option(
    "--burst-5xx",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Consecutive requests answered 503 once, mid-run.",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="The sandbox's answer time.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    help="Worker threads.",
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    default=None,
    help="Use this Redis instead of the embedded stack: its database is the "
    "broker, the next one the records (redis://127.0.0.1:6379/13 -> 13 and 14).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for every send to be final.",
)
@click.option("--seed", type=int, default=None, help="Seed for the mix and the faults.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(
    recipients: int,
    rate: str,
    fail_rate: float,
    burst_429: tuple[int, float],
    burst_5xx: int,
    latency_ms: float,
    concurrency: int,
    redis_url: str | None,
    timeout: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """Run the whole queue in one process against the sandbox, with faults, and check it.

    No Redis, broker or API key needed: the sandbox, fakeredis, an in-memory broker and
    a Celery worker all run in this process. Exit 0 only when every deliverable
    recipient reached the API exactly once, the suppressed one failed, the invalid
    sends were refused and nothing is dead.
    """
    from outbox.cli.demo import DemoOptions, run_demo
    from outbox.cli.demo.stack import StackError
    from outbox.cli.demo.view import render_summary

    storms, storm_seconds = burst_429
    options = DemoOptions(
        recipients=recipients,
        rate=rate,
        fail_rate=fail_rate,
        storms=storms,
        storm_seconds=storm_seconds,
        burst_5xx=burst_5xx,
        latency_ms=latency_ms,
        concurrency=concurrency,
        redis_url=redis_url,
        timeout=timeout,
        seed=seed,
    )
    err = _err()
    live = None if as_json and not err.is_terminal else (err if as_json else _out())
    try:
        report = run_demo(options, console=live)
    except StackError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        if live is not None:
            live.print()  # end the progress display's last line
        _fail("interrupted", 130)
    if as_json:
        _print_json(report.as_json())
    else:
        render_summary(report, _out())
    if not report.ok:
        raise click.exceptions.Exit(EXIT_FAILED)


# -- sandbox and webhooks -----------------------------------------------------------------


#: ``outbox sandbox``: defined once, in the sandbox package (also ``python -m outbox.sandbox``).
main.add_command(sandbox_command)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8026, show_default=True)
@click.option(
    "--insecure", is_flag=True, help="Run without OUTBOX_WEBHOOK_SECRET (accepts anyone's events)."
)
def webhooks(host: str, port: int, insecure: bool) -> None:
    """Serve the webhook receiver: POST /webhooks/smtp2go, GET /healthz."""
    from outbox.worker.settings import get_settings

    secret = get_settings().webhook_secret
    value = secret.get_secret_value() if secret is not None else None
    if not value and not insecure:
        _fail("OUTBOX_WEBHOOK_SECRET is not set; set it, or pass --insecure", EXIT_USAGE)
    try:
        from outbox.worker.webhooks.app import run
    except ImportError as exc:
        _fail(f"the webhook receiver is not available ({exc})", EXIT_FAILED)
    run(host, port, secret=value, insecure=insecure)


# -- status -------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _state(value: str) -> Text:
    return Text(value, style=_STATE_STYLE.get(value, ""))


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    status = error.get("status_code")
    head = f"{error.get('type', 'error')}" + (f" {status}" if status else "")
    message = str(error.get("message") or "")
    if len(message) > 60:
        message = message[:57] + "..."
    return f"{head}: {message}" if message else head


@main.command()
@click.argument("record_id", metavar="ID")
@click.option("--history", is_flag=True, help="Also show each chunk's transitions.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def status(record_id: str, history: bool, as_json: bool) -> None:
    """Show a send's record: ID is a batch id, or a chunk id (BATCH.N)."""
    from outbox.api import RecordNotFound
    from outbox.api import status as load
    from outbox.worker.states import State

    try:
        record = load(record_id)
    except RecordNotFound as exc:
        _fail(str(exc), EXIT_FAILED)
    if as_json:
        data = record.model_dump(mode="json")
        data["done"] = record.done
        data["attempts"] = record.attempts
        _print_json(data)
        return
    out = _out()
    header = Text.assemble(
        (f"{record.kind} ", "bold"),
        (record.id, "bold"),
        "  ",
        _state(record.state.value),
    )
    out.print(header)
    counts = ", ".join(f"{n} {s}" for s, n in record.counts.items() if n)
    out.print(
        f"  recipients {record.recipients:,}: [green]{record.recipients_succeeded:,} sent[/], "
        f"[red]{record.recipients_failed:,} failed[/]"
        + (f", {len(record.rejected)} refused before enqueueing" if record.rejected else "")
    )
    out.print(f"  chunks {record.chunks_total}: {counts or 'none'}")
    took = (
        f" (took {record.finished_at - record.created_at:.1f} s)"
        if record.finished_at and record.created_at
        else ""
    )
    out.print(f"  created {_when(record.created_at)}  finished {_when(record.finished_at)}{took}")
    if record.idempotency_key:
        out.print(f"  idempotency key {escape(record.idempotency_key)}")
    if record.rejected:
        out.print(f"  refused (suppressed locally): {escape(', '.join(record.rejected))}")

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for name in ("chunk", "state", "attempts", "recipients", "email_id"):
        table.add_column(name, no_wrap=True)
    for name in ("last error", "notes"):
        table.add_column(name, overflow="fold")
    for chunk in record.chunks:
        notes = list(chunk.notes)
        if chunk.failures:
            notes.append(f"API refused {len(chunk.failures)}: {', '.join(chunk.failures[:3])}")
        if chunk.replays:
            notes.append(f"replayed {chunk.replays}x")
        if chunk.ambiguous and chunk.ambiguous not in notes:
            notes.append(chunk.ambiguous)
        ident = chunk.email_id or (f"{len(chunk.message_ids)} SMS ids" if chunk.message_ids else "")
        table.add_row(
            chunk.id,
            _state(chunk.state.value),
            str(chunk.attempts),
            str(len(chunk.recipients)),
            ident,
            _error_text(chunk.last_error) if chunk.state is not State.SENT else "",
            "; ".join(notes),
        )
    out.print(table)
    if history:
        for chunk in record.chunks:
            out.print(f"[bold]{chunk.id}[/]")
            for step in chunk.history:
                extra = ", ".join(
                    f"{k} {v}" for k, v in step.items() if k not in {"at", "state", "error"}
                )
                error = _error_text(step.get("error"))
                out.print(
                    f"  {_when(step.get('at'))}  ",
                    _state(str(step.get("state", ""))),
                    f"  {extra}" + (f"  {error}" if error else ""),
                )
    events = record.events
    if events:
        table = Table(
            title=f"delivery events ({len(events)})",
            box=box.SIMPLE_HEAD,
            header_style="bold",
            pad_edge=False,
        )
        for name in ("time", "event", "recipient", "detail"):
            table.add_column(name, overflow="fold")
        for event in events:
            table.add_row(
                str(event.get("received_at") or event.get("time") or ""),
                str(event.get("event") or event.get("type") or ""),
                str(event.get("recipient") or event.get("email") or event.get("rcpt") or ""),
                str(event.get("reason") or event.get("description") or ""),
            )
        out.print(table)
    else:
        out.print("  no delivery events yet", style="dim")


# -- dead letters -------------------------------------------------------------------------


@main.group()
def dead() -> None:
    """Chunks whose retries ran out: list them, replay them."""


@dead.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def dead_list(limit: int, as_json: bool) -> None:
    """List dead chunks, newest last."""
    from outbox.worker.runtime import get_runtime

    store = get_runtime().store
    letters = store.dead_letters(limit=limit)
    # One pipeline for every chunk, not a round trip each.
    found = {fields["id"]: fields for fields, _, _ in store.get_chunks_raw([c for c, _ in letters])}
    rows: list[dict[str, Any]] = []
    for chunk_id, died in letters:
        fields = found.get(chunk_id, {})
        rows.append(
            {
                "id": chunk_id,
                "died_at": died,
                "kind": fields.get("kind", ""),
                "recipients": int(fields.get("n_recipients", 0)),
                "attempts": int(fields.get("attempts", 0)),
                "replays": int(fields.get("replays", 0)),
                "last_error": json.loads(fields["last_error"])
                if fields.get("last_error")
                else None,
                "expired": not fields,
            }
        )
    if as_json:
        _print_json(rows)
        return
    out = _out()
    if not rows:
        out.print("no dead letters", style="green")
        return
    table = Table(
        title=f"dead letters ({len(rows)})",
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
    )
    for name in ("chunk", "died", "kind", "recipients", "attempts", "replays"):
        table.add_column(name, no_wrap=True)
    table.add_column("last error", overflow="fold")
    for row in rows:
        table.add_row(
            row["id"],
            _when(row["died_at"]),
            row["kind"] or ("expired" if row["expired"] else ""),
            str(row["recipients"]),
            str(row["attempts"]),
            str(row["replays"]),
            _error_text(row["last_error"]),
        )
    out.print(table)
    out.print("replay with: outbox dead replay ID... (or --all)", style="dim")


def _dead_chunks_of(ids: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Chunk ids to replay for the ids given (a batch id means its dead chunks)."""
    from outbox.worker.records import load_record
    from outbox.worker.runtime import get_runtime
    from outbox.worker.states import State

    store = get_runtime().store
    dead_now = {chunk_id for chunk_id, _ in store.dead_letters(limit=100_000)}
    chosen: list[str] = []
    skipped: list[dict[str, str]] = []
    for ident in ids:
        if ident in dead_now:
            chosen.append(ident)
            continue
        record = load_record(store, ident)
        if record is not None:
            found = [c.id for c in record.chunks if c.state is State.DEAD]
            chosen += found
            if not found:
                skipped.append({"id": ident, "reason": f"no dead chunk (batch is {record.state})"})
            continue
        raw = store.get_chunk_raw(ident)
        reason = f"not dead (state {raw['state']})" if raw else "unknown id (or expired)"
        skipped.append({"id": ident, "reason": reason})
    return list(dict.fromkeys(chosen)), skipped


@dead.command("replay")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead chunk.")
@click.option("--json", "as_json", is_flag=True, help="Print what was replayed as JSON.")
def dead_replay(ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Put dead chunks back on their queue (attempts start again).

    An ID is a chunk id, or a batch id for all of its dead chunks.
    """
    from outbox.worker.app import app
    from outbox.worker.payloads import chunk_call
    from outbox.worker.runtime import get_runtime
    from outbox.worker.store import batch_id_of

    if bool(ids) == replay_all:
        _fail("give chunk or batch ids, or --all (not both)", EXIT_USAGE)
    store = get_runtime().store
    if replay_all:
        chosen = [chunk_id for chunk_id, _ in store.dead_letters(limit=100_000)]
        skipped: list[dict[str, str]] = []
    else:
        chosen, skipped = _dead_chunks_of(ids)
    replayed: list[dict[str, str]] = []
    if chosen:
        # Connect to the broker before changing any record: a chunk moved back to
        # ``queued`` but never published would wait for the stuck-message sweep.
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=2, interval_start=0.2)
            for chunk_id in chosen:
                call = chunk_call(store, chunk_id)
                if call is None:
                    skipped.append({"id": chunk_id, "reason": "expired"})
                    continue
                if not store.replay(chunk_id, batch_id_of(chunk_id), who="outbox dead replay"):
                    skipped.append({"id": chunk_id, "reason": "no longer dead"})
                    continue
                name, args, queue = call
                app.send_task(name, args=args, queue=queue, routing_key=queue, producer=producer)
                replayed.append({"id": chunk_id, "task": name, "queue": queue})
    if as_json:
        _print_json({"replayed": replayed, "skipped": skipped})
    else:
        out, err = _out(), _err()
        for row in replayed:
            out.print(f"[green]replayed[/] {row['id']} -> queue {row['queue']}")
        for row in skipped:
            err.print(f"[yellow]skipped[/] {escape(row['id'])}: {row['reason']}")
        if not replayed and not skipped:
            out.print("no dead letters", style="green")
    if skipped and not replayed:
        raise click.exceptions.Exit(EXIT_FAILED)


# -- send ---------------------------------------------------------------------------------


@main.group()
def send() -> None:
    """Queue one message by hand (the workers send it)."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _enqueue(call: Callable[[], Any], as_json: bool) -> None:
    from outbox.api import ValidationError

    try:
        handle = call()
    except ValidationError as exc:
        err = _err()
        err.print("[bold red]outbox:[/] invalid message, nothing queued:")
        for name, problem in exc.errors.items():
            err.print(f"  [bold]{escape(name)}[/]: {escape(problem)}")
        raise click.exceptions.Exit(EXIT_USAGE) from None
    if as_json:
        _print_json(
            {
                "id": handle.id,
                "kind": handle.kind,
                "chunks": handle.chunks,
                "recipients": handle.recipients,
                "duplicate": handle.duplicate,
                "rejected": list(handle.rejected),
            }
        )
        return
    click.echo(handle.id)
    note = f"{_plural(handle.recipients, 'recipient')} in {_plural(handle.chunks, 'chunk')}"
    if handle.duplicate:
        note += " (already queued with this idempotency key)"
    if handle.rejected:
        note += f"; refused (suppressed): {', '.join(handle.rejected)}"
    _err().print(f"queued {handle.kind}: {note}. Follow it: outbox status {handle.id}", style="dim")


_json_flag = click.option("--json", "as_json", is_flag=True, help="Print the handle as JSON.")
_key_option = click.option(
    "--idempotency-key", default=None, help="Sending again with the same key queues nothing."
)


@send.command("email")
@click.option("--from", "sender", required=True, help="Sender address (Name <addr> works).")
@click.option("--to", multiple=True, required=True, help="Recipient; repeat for more.")
@click.option("--cc", multiple=True)
@click.option("--bcc", multiple=True)
@click.option("--subject", required=True)
@click.option("--text", "text_body", default=None, help="Plain-text body.")
@click.option("--html", "html_body", default=None, help="HTML body.")
@click.option("--reply-to", default=None)
@_key_option
@_json_flag
def send_email_cmd(
    sender: str,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    subject: str,
    text_body: str | None,
    html_body: str | None,
    reply_to: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an email."""
    from outbox.api import send_email

    _enqueue(
        lambda: send_email(
            sender,
            list(to),
            subject,
            html_body=html_body,
            text_body=text_body,
            cc=list(cc),
            bcc=list(bcc),
            reply_to=reply_to,
            idempotency_key=idempotency_key,
        ),
        as_json,
    )


@send.command("template")
@click.option("--from", "sender", required=True)
@click.option("--to", multiple=True, required=True, help="Recipient; repeat for more.")
@click.option("--template-id", required=True)
@click.option(
    "--data",
    "data_json",
    default="{}",
    show_default=True,
    help="The template's variables as a JSON object.",
)
@click.option("--subject", default=None, help="Overrides the template's subject.")
@_key_option
@_json_flag
def send_template_cmd(
    sender: str,
    to: tuple[str, ...],
    template_id: str,
    data_json: str,
    subject: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an email rendered from a template stored at SMTP2GO."""
    from outbox.api import send_template

    try:
        data = json.loads(data_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    _enqueue(
        lambda: send_template(
            sender,
            list(to),
            template_id,
            data,
            subject=subject,
            idempotency_key=idempotency_key,
        ),
        as_json,
    )


@send.command("mime")
@click.argument("message", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@_key_option
@_json_flag
def send_mime_cmd(message: Path, idempotency_key: str | None, as_json: bool) -> None:
    """Queue a complete MIME message from a file (- for stdin)."""
    from outbox.api import send_mime

    raw = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    _enqueue(lambda: send_mime(raw, idempotency_key=idempotency_key), as_json)


@send.command("sms")
@click.option("--to", multiple=True, required=True, help="E.164 number; repeat for more.")
@click.option("--message", required=True)
@click.option("--sender", default=None, help="Sender id, where the route allows one.")
@_key_option
@_json_flag
def send_sms_cmd(
    to: tuple[str, ...],
    message: str,
    sender: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an SMS."""
    from outbox.api import send_sms

    _enqueue(
        lambda: send_sms(list(to), message, idempotency_key=idempotency_key, sender=sender),
        as_json,
    )


if __name__ == "__main__":
    main(prog_name="outbox")
