"""How the ``outbox`` command writes: plain tables, states in colour on a terminal, JSON.

Nothing here needs more than click (which comes with Celery), so the operator commands
work on a plain install; only the demo draws progress bars (``smtp2go-outbox[demo]``). URLs are
shown through :func:`~outbox.worker.redis_url.redacted_url`, passwords masked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from outbox.worker.redis_url import redacted_url

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "error_text",
    "fail",
    "is_time",
    "print_json",
    "redacted_url",
    "state",
    "table",
    "when",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

_STATE_COLOUR = {
    "queued": "cyan",
    "sending": "blue",
    "retrying": "yellow",
    "throttled": "yellow",
    "sent": "green",
    "delivered": "green",
    "failed": "red",
    "dead": "red",
    "hard-bounced": "red",
    "spam": "red",
    "suppressed": "magenta",
}


def fail(message: str, code: int, *, as_json: bool = False, **details: Any) -> NoReturn:
    """Say what went wrong on stderr (and, with ``--json``, as JSON on stdout, with
    ``details`` beside the message) and exit."""
    if as_json:
        print_json({"error": message, **details})
    click.echo(click.style("outbox: ", fg="red", bold=True) + message, err=True)
    raise click.exceptions.Exit(code)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def when(value: float | str | None) -> str:
    """A moment as local ``YYYY-MM-DD HH:MM:SS`` (``-`` when unset), whichever way it was
    written: epoch seconds (outbox's records) or ISO 8601 (SMTP2GO's event times and
    quota cycle; UTC when it names no offset). Every time the command line shows goes
    through here, so two times side by side always read the same way."""
    if value is None or value == "" or value == 0:
        return "-"
    try:
        moment = datetime.fromtimestamp(float(value))
    except (TypeError, ValueError, OverflowError, OSError):
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return str(value)  # not a time we can read: shown as given, never dropped
        moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def is_time(name: str) -> bool:
    """Is a record's field a moment (``slot_at``, ``lease_until``, ``time``)?"""
    return name.endswith(("_at", "_until")) or name in {"time", "sendtime"}


def state(value: str) -> str:
    return click.style(value, fg=_STATE_COLOUR.get(value), bold=value == "dead")


def error_text(error: dict[str, Any] | None, width: int = 60) -> str:
    if not error:
        return ""
    status = error.get("status_code")
    head = f"{error.get('type', 'error')}" + (f" {status}" if status else "")
    message = str(error.get("message") or "").replace("\n", " ")
    if len(message) > width:
        message = message[: width - 3] + "..."
    return f"{head}: {message}" if message else head


def _width(text: str) -> int:
    return len(click.unstyle(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: int = 2) -> str:
    """Columns padded to their widest cell; the last column is never padded."""
    cells = [list(headers), *[[str(c) for c in row] for row in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        padded = [
            cell + " " * (widths[i] - _width(cell)) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        ]
        line = " " * indent + "  ".join(padded).rstrip()
        lines.append(click.style(line, bold=True) if n == 0 else line)
    return "\n".join(lines)


def terminal() -> bool:
    return sys.stdout.isatty()
