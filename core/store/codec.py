"""The strings Python and the Lua scripts both build or read, each defined once.

A chunk's attempt in the rate-limit windows (``<chunk>#<attempt>``), a place in a
lane's line (chunk, worker, token, tab-separated) and a message on a sender's wake list
(``<member> <slot time> <granted at>``, ``<member> <word>``) travel between the two
sides as text. Their Lua builders and readers sit together in ``lua/codec.lua``, first
in every script's prelude; these are the Python ones, and a change to a format changes
both files. Each format is whole on both sides even where one side only writes it (Lua
alone builds a grant, reads a line entry): its tests check each side reads what the
other builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "IN_LINE",
    "LineEntry",
    "Member",
    "Wake",
    "WakeMessage",
    "line_entry",
    "member",
    "read_line_entry",
    "read_member",
    "read_wake",
    "wake_grant",
    "wake_word",
]

#: The member a wake message names when its sender holds no slot yet (it is in line).
IN_LINE = "-"


@dataclass(frozen=True, slots=True)
class Member:
    """A chunk's attempt as the windows count it."""

    chunk_id: str
    attempt: int


def member(chunk_id: str, attempt: int) -> str:
    """``<chunk>#<attempt>``; the chunk id may hold any character (the last ``#`` splits)."""
    if attempt < 0:
        raise ValueError(f"attempt: {attempt} is below 0")
    return f"{chunk_id}#{attempt}"


def read_member(text: str) -> Member:
    chunk_id, sep, attempt = text.rpartition("#")
    if not sep or not attempt.isdigit():
        raise ValueError(f"member: {text!r} is not <chunk>#<attempt>")
    return Member(chunk_id, int(attempt))


@dataclass(frozen=True, slots=True)
class LineEntry:
    """A place in a lane's line: whose chunk, which worker's thread waits ('' for none:
    a bulk chunk waits without one), and the token of that wait."""

    chunk_id: str
    worker: str
    token: str


def line_entry(chunk_id: str, worker: str, token: str) -> str:
    for name, value in (("chunk_id", chunk_id), ("worker", worker), ("token", token)):
        if "\t" in value:
            raise ValueError(f"{name}: {value!r} holds a tab, which separates a line entry")
    return f"{chunk_id}\t{worker}\t{token}"


def read_line_entry(text: str) -> LineEntry:
    parts = text.split("\t")
    if len(parts) != 3:
        raise ValueError(f"line entry: {text!r} is not chunk, worker, token tab-separated")
    return LineEntry(*parts)


@dataclass(frozen=True, slots=True)
class WakeMessage:
    """A wake list's message: the member it is for (:data:`IN_LINE` for a sender with no
    slot yet), and either a word (``held``, ``stop``, ...) or the slot's time and the
    Redis time it was granted at."""

    member: str
    word: str = ""
    at: float = 0.0
    now: float = 0.0


class Wake(StrEnum):
    """The words of a wake message (the scripts' ``WAKE``)."""

    #: The slot's time has come: send.
    GO = "go"
    #: The account's sending is held: give the slot back and wait parked.
    HELD = "held"
    #: The chunk's send was paused (or canceled) while it waited, or the chunks granted
    #: before it took the rest of the monthly quota: nothing to send now.
    PAUSED = "paused"
    CANCELED = "canceled"
    THROTTLED = "throttled"
    #: Nobody granted a slot in time.
    TIMEOUT = "timeout"
    #: The worker is stopping: give the slot or the place in line back.
    STOP = "stop"


def wake_grant(member: str, at: float, now: float) -> str:
    """A slot granted (or moved by a cool-down) for ``at``, at Redis time ``now``."""
    _no_space("member", member)
    return f"{member} {at:.6f} {now:.6f}"


def wake_word(member: str, word: str) -> str:
    """What a sender does instead of sending (``member`` is :data:`IN_LINE` for one in
    line): the word is never a number, so it is never read as a grant."""
    _no_space("member", member)
    _no_space("word", word)
    if not word or _is_number(word):
        raise ValueError(f"word: {word!r} is empty or a number")
    return f"{member} {word}"


def read_wake(text: str) -> WakeMessage:
    parts = text.split(" ")
    if len(parts) == 2 and not _is_number(parts[1]):
        return WakeMessage(parts[0], word=parts[1])
    if len(parts) == 3 and _is_number(parts[1]) and _is_number(parts[2]):
        return WakeMessage(parts[0], at=float(parts[1]), now=float(parts[2]))
    raise ValueError(f"wake message: {text!r} is neither '<member> <word>' nor a grant")


def _no_space(name: str, value: str) -> None:
    if " " in value:
        raise ValueError(f"{name}: {value!r} holds a space, which separates a wake message")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
