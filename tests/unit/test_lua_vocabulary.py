"""The scripts' vocabularies come from the Python enums, through the prelude.

A state, fate, kind, queue or wake word spelled as a string literal in a script would
drift from its enum unseen; the prelude's tables (``STATE.sending``, ``FATE_RANK[...]``)
are generated from the enums, so the check here is that no script spells one itself and
that the tables say what the enums say.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import fakeredis
import pytest

from outbox.core.states import FATE_RANK, FINAL_STATES, Fate
from outbox.core.store import keys, scripts
from outbox.core.store.batches import ClaimOutcome

_SCRIPTS = sorted(
    p.name.removesuffix(".lua")
    for p in resources.files("outbox.core.store").joinpath("lua").iterdir()
    if p.name.endswith(".lua")
)

#: Every value a script must take from the prelude instead of spelling.
_WORDS = {m.value for enum in scripts.VOCABULARIES.values() for m in enum}

#: The lanes are a vocabulary of their own (``bulk`` is also a queue's name), named once
#: in ``limits.lua``.
_LANES = "local TRANSACTIONAL, BULK = 'transactional', 'bulk'"


def _literals(source: str) -> list[tuple[int, int, str, str]]:
    """Each quoted string outside comments: (line number, column, its text, its line)."""
    out = []
    for number, line in enumerate(source.splitlines(), start=1):
        i, quote, start = 0, "", 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    out.append((number, start, line[start + 1 : i], line))
                    quote = ""
            elif c in "'\"":
                quote, start = c, i
            elif line.startswith("--", i):
                break
            i += 1
    return out


def _allowed(name: str, column: int, text: str, line: str) -> bool:
    before = line[:column]
    if before.endswith("key(") and text in keys.TEMPLATES:
        return True  # a key template's name (`throttled` is a key, too)
    if name == "claim" and before.rstrip().endswith("return {"):
        return text in {o.value for o in ClaimOutcome}  # a claim's outcome, its first field
    return line.strip() == _LANES


def _spelled(name: str, source: str) -> list[str]:
    return [
        f"{name}.lua:{number}: {text!r}"
        for number, column, text, line in _literals(source)
        if text in _WORDS and not _allowed(name, column, text, line)
    ]


@pytest.mark.parametrize("name", _SCRIPTS)
def test_no_script_spells_a_state_fate_kind_queue_or_wake_word(name: str) -> None:
    source = resources.files("outbox.core.store").joinpath("lua", f"{name}.lua").read_text()
    assert _spelled(name, source) == []


def test_the_check_finds_a_spelled_word_and_passes_the_tables() -> None:
    source = (
        "-- a comment may say 'sending'\n"
        "if state == 'sending' then count(b, STATE.sending, \"dead\") end\n"
        "redis.call('ZREM', key('throttled'), id)\n"
        "local q = redis.call('HGET', c, 'queue') or 'email'\n"
    )
    assert _spelled("x", source) == ["x.lua:2: 'sending'", "x.lua:2: 'dead'", "x.lua:4: 'email'"]
    claim = "return {'paused', '0', attempts, 'paused'}\nreturn {'nonsense', '0'}\n"
    assert _spelled("claim", claim) == ["claim.lua:1: 'paused'"]


def _prelude_value(expression: str) -> Any:
    raw = fakeredis.FakeRedis().eval(scripts._prelude() + f"return {expression}", 0)
    return json.loads(raw)


def test_the_prelude_tables_are_the_enums() -> None:
    for table, enum in scripts.VOCABULARIES.items():
        assert _prelude_value(f"cjson.encode({table})") == {
            m.name.lower(): m.value for m in enum
        }, table
    assert _prelude_value("cjson.encode(FATE_RANK)") == {f.value: r for f, r in FATE_RANK.items()}
    assert _prelude_value("cjson.encode(FINAL)") == {s.value: True for s in FINAL_STATES}


def test_every_fate_has_a_rank_and_a_final_state_is_a_fate() -> None:
    # the scripts write a chunk's final state as its recipients' fate
    assert set(FATE_RANK) == set(Fate)
    assert {s.value for s in FINAL_STATES} <= {f.value for f in Fate}
    assert all(re.fullmatch(r"[a-z_]+", f.name.lower()) for f in Fate)
