"""How the ``outbox`` command writes: plain tables, states in colour on a terminal, JSON.

Nothing here needs more than click (which comes with Celery), so the operator commands
work on a plain install; only the demo draws progress bars (``smtp2go-outbox[demo]``). URLs are
shown through :func:`~outbox.core.redis_url.redacted_url`, passwords masked.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from outbox.core.redis_url import redacted_url
from outbox.core.states import Fate, State

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "FALLBACK_COLUMNS",
    "clip",
    "columns",
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

#: Chunk states and recipients' fates (``queued``, ``sent``, ... are both).
_STATE_COLOUR: dict[str, str] = {
    State.QUEUED: "cyan",
    State.SENDING: "blue",
    State.RETRYING: "yellow",
    State.THROTTLED: "yellow",
    State.SENT: "green",
    Fate.DELIVERED: "green",
    State.FAILED: "red",
    State.DEAD: "red",
    Fate.HARD_BOUNCED: "red",
    Fate.SPAM: "red",
    Fate.SUPPRESSED: "magenta",
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


#: How wide a line may be when the output is no terminal (a pipe, a file, a test).
FALLBACK_COLUMNS = 160
#: A column is never narrowed below this (or its header, or its widest cell if narrower).
_NARROWEST = 8
_ELLIPSIS = "\u2026"


def columns() -> int:
    """How wide a line may be: the terminal's width (or ``COLUMNS``), else 160, so a
    listing piped to a file is as readable as one on a screen."""
    if os.environ.get("COLUMNS") or terminal():
        return max(shutil.get_terminal_size((FALLBACK_COLUMNS, 24)).columns, 2 * _NARROWEST)
    return FALLBACK_COLUMNS


def _width(text: str) -> int:
    return len(click.unstyle(text))


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns, ending in an ellipsis when cut (a cut cell loses
    its colour: the escape codes cannot be cut in half)."""
    if _width(text) <= width:
        return text
    if width <= 0:
        return ""
    return click.unstyle(text)[: width - 1] + _ELLIPSIS


def _fit(widths: list[int], floors: list[int], room: int) -> list[int]:
    """Narrow the widest columns, one column at a time, until they fit in ``room``."""
    widths = list(widths)
    while sum(widths) > room:
        wide = max(range(len(widths)), key=lambda i: widths[i] - floors[i])
        if widths[wide] <= floors[wide]:
            break  # every column at its narrowest: the line is cut as a whole
        widths[wide] -= 1
    return widths


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    indent: int = 2,
    width: int | None = None,
    cell: int | None = None,
    whole: int = 1,
) -> str:
    """Columns padded to their widest cell; the last column is never padded.

    ``cell`` caps every cell, ``width`` every line: the widest columns are narrowed
    first, never the first ``whole`` ones (an id is worth nothing cut), and a cell cut
    to fit ends in an ellipsis.
    """
    cells = [list(headers), *[[str(c) for c in row] for row in rows]]
    if cell is not None:
        cells = [[clip(c, cell) for c in row] for row in cells]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    if width is not None:
        room = width - indent - 2 * (len(headers) - 1)
        floors = [
            w if i < whole else min(w, max(_NARROWEST, _width(h)))
            for i, (w, h) in enumerate(zip(widths, headers, strict=True))
        ]
        widths = _fit(widths, floors, room)
    lines = []
    for n, row in enumerate(cells):
        cut = [clip(c, widths[i]) for i, c in enumerate(row)]
        padded = [
            c + " " * (widths[i] - _width(c)) if i < len(cut) - 1 else c for i, c in enumerate(cut)
        ]
        line = " " * indent + "  ".join(padded).rstrip()
        if width is not None:
            line = clip(line, width)
        lines.append(click.style(line, bold=True) if n == 0 else line)
    return "\n".join(lines)


def terminal() -> bool:
    return sys.stdout.isatty()
