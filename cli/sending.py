"""``outbox send``: queue one message by hand (the workers send it)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from outbox.cli.output import EXIT_USAGE, print_json, when

__all__ = ["send"]


@click.group()
def send() -> None:
    """Queue one message by hand (the workers send it)."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


#: A delay from now: ``+90s``, ``+10m``, ``+2h``, ``+1d`` (``+1h30m`` too).
_DELAY = re.compile(r"\+(?:\d+[smhd])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """``--send-at`` as epoch seconds, which the producers take."""
    if value is None:
        return None
    text = value.strip()
    if _DELAY.fullmatch(text):
        parts = re.findall(r"(\d+)([smhd])", text)
        return time.time() + sum(int(n) * _UNITS[unit] for n, unit in parts)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an ISO 8601 time (2026-07-01T09:00, "
            "2026-07-01T09:00+02:00) nor a delay (+10m, +2h, +1d)"
        ) from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _enqueue(call: Callable[[], Any], as_json: bool, send_at: float | None = None) -> None:
    from outbox import ValidationError

    try:
        handle = call()
    except ValidationError as exc:
        if as_json:
            print_json({"error": "invalid message, nothing queued", "fields": exc.errors})
        click.echo(
            click.style("outbox: ", fg="red", bold=True) + "invalid message, nothing queued:",
            err=True,
        )
        for name, problem in exc.errors.items():
            click.echo(f"  {click.style(name, bold=True)}: {problem}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from None
    if as_json:
        print_json(
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
    if send_at is not None and send_at > time.time():
        note += f", due {when(send_at)}"
    click.echo(f"queued {handle.kind}: {note}. Follow it: outbox status {handle.id}", err=True)


_json_flag = click.option("--json", "as_json", is_flag=True, help="Print the handle as JSON.")
_key_option = click.option(
    "--idempotency-key", default=None, help="Sending again with the same key queues nothing."
)
_send_at_option = click.option(
    "--send-at",
    metavar="WHEN",
    callback=_when,
    default=None,
    help="When to send: an ISO 8601 time (local unless it names an offset, "
    "2026-07-01T09:00 or 2026-07-01T09:00+02:00) or a delay from now (+90s, +10m, "
    "+2h, +1d). Default: now.",
)
_attach_option = click.option(
    "--attach",
    "attach",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A file to attach, read now (its name and MIME type come from the path); "
    "repeat for more. At most 50 MB a message as sent, about 37 MB of files on disk.",
)


@send.command("email")
@click.option("--from", "sender", required=True, help="Sender address (Name <addr> works).")
@click.option("--to", multiple=True, required=True, help="Recipient; repeat for more.")
@click.option("--cc", multiple=True, help="Copy recipient, seen by everyone; repeat for more.")
@click.option(
    "--bcc",
    multiple=True,
    help="Blind copy recipient, named to no other recipient; repeat for more.",
)
@click.option("--subject", required=True)
@click.option("--text", "text_body", default=None, help="Plain-text body.")
@click.option("--html", "html_body", default=None, help="HTML body.")
@click.option("--reply-to", default=None, help="Where replies go, if not to the sender.")
@_attach_option
@_send_at_option
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
    attach: tuple[Path, ...],
    send_at: float | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an email."""
    from outbox import send_email

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
            attachments=list(attach),
            idempotency_key=idempotency_key,
            send_at=send_at,
        ),
        as_json,
        send_at,
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
@_attach_option
@_send_at_option
@_key_option
@_json_flag
def send_template_cmd(
    sender: str,
    to: tuple[str, ...],
    template_id: str,
    data_json: str,
    subject: str | None,
    attach: tuple[Path, ...],
    send_at: float | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an email rendered from a template stored at SMTP2GO."""
    from outbox import send_template

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
            attachments=list(attach),
            idempotency_key=idempotency_key,
            send_at=send_at,
        ),
        as_json,
        send_at,
    )


@send.command("mime")
@click.argument("message", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@_send_at_option
@_key_option
@_json_flag
def send_mime_cmd(
    message: Path, send_at: float | None, idempotency_key: str | None, as_json: bool
) -> None:
    """Queue a complete MIME message from a file (- for stdin)."""
    from outbox import send_mime

    raw = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    _enqueue(
        lambda: send_mime(raw, idempotency_key=idempotency_key, send_at=send_at), as_json, send_at
    )


@send.command("sms")
@click.option("--to", multiple=True, required=True, help="E.164 number; repeat for more.")
@click.option("--message", required=True)
@click.option("--sender", default=None, help="Sender id, where the route allows one.")
@_send_at_option
@_key_option
@_json_flag
def send_sms_cmd(
    to: tuple[str, ...],
    message: str,
    sender: str | None,
    send_at: float | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Queue an SMS."""
    from outbox import send_sms

    _enqueue(
        lambda: send_sms(
            list(to), message, sender, idempotency_key=idempotency_key, send_at=send_at
        ),
        as_json,
        send_at,
    )
