"""The Lua scripts, loaded from ``lua/*.lua`` with ``register_script``.

Each script is its file after a prelude: the constants it shares with Python, spelled
there from their one definition (the chunk states ``STATE``, the final ones ``FINAL``,
the recipients' fates ``FATE`` and their ranks ``FATE_RANK``, the kinds ``KIND`` and
queues ``QUEUE``, the words of a wake message ``WAKE``, the send task of each kind and
the kinds the monthly quota does not count, the key templates of :mod:`.keys` and its
stand-in for an absent key; a script spells none of these values itself, which
``tests/unit/test_lua_vocabulary.py`` checks), and the shared functions of ``common.lua``,
``codec.lua`` (the string formats of :mod:`.codec`) and ``limits.lua``. Redis caches a
script by its SHA, so each is sent once per server, then called with ``EVALSHA``.

A script's arguments are one JSON object, ``ARGV[1]`` (``local A = cjson.decode(ARGV[1])``
in the script): its fields are named where the script is called (a ``TypedDict`` beside
the caller, named in the script's header), so neither side counts positions. Its keys
stay ``KEYS``, which Redis Cluster needs to see. Decoding costs Redis time by the byte,
so what can be large (a page of entries) travels as ARGVs of its own after the object,
and what a script would only copy (a payload with attachments) is written by a plain
command before it (:func:`call_after`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from outbox.core.kinds import KINDS
from outbox.core.queues import Queue
from outbox.core.states import FATE_RANK, FINAL_STATES, Fate, Kind, State
from outbox.core.store import keys
from outbox.core.store.codec import Wake
from outbox.core.text import compact_json

__all__ = ["VOCABULARIES", "args", "call_after", "load"]

#: Libraries every script is prepended with, in this order.
_LIBRARIES = ("common", "codec", "limits")

#: The enums each script reads as a table of the prelude: ``STATE.sending``,
#: ``FATE.soft_bounced`` (a member's name, lower case, gives its value).
VOCABULARIES: dict[str, type[StrEnum]] = {
    "STATE": State,
    "FATE": Fate,
    "KIND": Kind,
    "QUEUE": Queue,
    "WAKE": Wake,
}


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _table(name: str, enum: type[StrEnum]) -> str:
    members = ", ".join(f"{m.name.lower()} = {_lua_string(m.value)}" for m in enum)
    return f"local {name} = {{{members}}}"


@cache
def _prelude() -> str:
    final = ", ".join(f"[{_lua_string(s.value)}] = true" for s in sorted(FINAL_STATES))
    templates = ", ".join(
        f"{name} = {_lua_string(template.replace('{}', '%s'))}"
        for name, template in sorted(keys.TEMPLATES.items())
    )
    libraries = "\n".join(_source(name) for name in _LIBRARIES)
    tasks = ", ".join(
        f"[{_lua_string(kind.value)}] = {_lua_string(spec.task.value)}"
        for kind, spec in KINDS.items()
    )
    unmetered = ", ".join(
        f"[{_lua_string(kind.value)}] = true" for kind, spec in KINDS.items() if not spec.metered
    )
    absent = f"local ABSENT = {_lua_string(keys.absent())}"
    vocabularies = "\n".join(_table(name, enum) for name, enum in VOCABULARIES.items())
    ranks = ", ".join(f"[{_lua_string(fate.value)}] = {rank}" for fate, rank in FATE_RANK.items())
    return (
        f"{vocabularies}\nlocal FATE_RANK = {{{ranks}}}\n"
        f"local FINAL = {{{final}}}\nlocal TEMPLATE = {{{templates}}}\n"
        f"local TASKS = {{{tasks}}}\nlocal UNMETERED = {{{unmetered}}}\n{absent}\n{libraries}\n"
    )


@cache
def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


def source(name: str) -> str:
    """The whole text of script ``name`` as Redis runs it."""
    return _prelude() + _source(name)


def load(redis: Any, name: str) -> Any:
    """``redis.register_script`` of script ``name`` (a callable ``Script``)."""
    return redis.register_script(source(name))


def args(values: Mapping[str, Any]) -> list[str]:
    """A script's arguments as it reads them: ``ARGV[1]``, one JSON object. A ``None``
    field is left out (the script finds it absent, ``nil``): JSON's ``null`` would reach
    Lua as ``cjson.null``, which is true."""
    named = {name: value for name, value in values.items() if value is not None}
    return [compact_json(named)]


def call_after(
    redis: Any,
    script: Any,
    first: Callable[[Any], object],
    *,
    keys: Sequence[str],
    args: Sequence[Any],
) -> Any:
    """``script`` run right after the plain commands ``first`` queues on a pipeline (no
    transaction: Redis runs them in order, each on its own), in one round trip; the
    script's reply. A SET takes its value as Redis read it, where a script copies every
    byte it is handed."""
    pipe = redis.pipeline(transaction=False)
    first(pipe)
    script(keys=keys, args=args, client=pipe)
    # A pipeline asks SCRIPT EXISTS before it runs a script, a round trip more on every
    # call: this one sends EVALSHA as it is, and a server that does not know the script
    # yet gets a call of its own, which loads it (``first`` has run by then).
    getattr(pipe, "scripts", set()).clear()
    try:
        return pipe.execute()[-1]
    except NoScriptError:
        return script(keys=keys, args=args)
