"""The Lua scripts, loaded from ``lua/*.lua`` with ``register_script``.

Each script is its file after a prelude: the constants it shares with Python (the
final states, the send task of each kind and the kinds the monthly quota does not
count, the key templates of :mod:`.keys` and its
stand-in for an absent key), spelled
there from their one definition, and the shared functions of ``common.lua`` and
``limits.lua``. Redis caches a script by its SHA, so each is sent once per server, then
called with ``EVALSHA``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from outbox.worker.kinds import KINDS
from outbox.worker.states import FINAL_STATES
from outbox.worker.store import keys

__all__ = ["load"]

#: Libraries every script is prepended with, in this order.
_LIBRARIES = ("common", "limits")


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
    return (
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
