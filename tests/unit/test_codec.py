"""The string formats both sides build or read (``store/codec.py``, ``lua/codec.lua``).

Each format round-trips in Python, and what the Lua side builds reads back in Python
(and the other way), through the prelude every script runs with.
"""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.core.store import codec, scripts
from outbox.core.text import as_text

#: Text of any characters but the separators of the formats that are split on them.
_no_tab = st.text(st.characters(blacklist_characters="\t"), max_size=20)
_no_space = st.text(st.characters(blacklist_characters=" "), max_size=20)


@pytest.fixture
def lua() -> Any:
    """Run ``expression`` in the prelude's scope with ``ARGV``; its value as text."""
    redis = fakeredis.FakeRedis()

    def run(expression: str, *args: Any) -> str:
        raw = redis.eval(scripts._prelude() + f"return {expression}", 0, *args)
        return as_text(raw)

    return run


@given(_no_tab.filter(bool), st.integers(min_value=0, max_value=10**6))
def test_a_member_round_trips_whatever_its_chunk_id_holds(chunk_id: str, attempt: int) -> None:
    assert codec.read_member(codec.member(chunk_id, attempt)) == codec.Member(chunk_id, attempt)


@pytest.mark.parametrize(
    "chunk_id", ["ab12.3", "a.b.c.7", "tenant#1.2", "x#", "#", "ids.with.dots#and#hashes.0"]
)
def test_a_member_splits_on_its_last_hash(chunk_id: str) -> None:
    assert codec.member(chunk_id, 12) == f"{chunk_id}#12"
    assert codec.read_member(f"{chunk_id}#12") == codec.Member(chunk_id, 12)


@pytest.mark.parametrize("text", ["abc", "abc#", "abc#x", "abc#-1", "abc#1.5", "probe:12ab"])
def test_what_is_not_a_member_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=r"^member: "):
        codec.read_member(text)


def test_a_negative_attempt_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^attempt: "):
        codec.member("a.1", -1)


@given(_no_tab, _no_tab, _no_tab)
def test_a_line_entry_round_trips(chunk_id: str, worker: str, token: str) -> None:
    entry = codec.line_entry(chunk_id, worker, token)
    assert codec.read_line_entry(entry) == codec.LineEntry(chunk_id, worker, token)


def test_a_line_entry_without_a_worker_is_a_thread_less_wait() -> None:
    assert codec.line_entry("b.1", "", "t") == "b.1\t\tt"
    assert codec.read_line_entry("b.1\t\tt") == codec.LineEntry("b.1", "", "t")


@pytest.mark.parametrize("field", ["chunk_id", "worker", "token"])
def test_a_tab_in_a_line_entry_field_is_refused_by_name(field: str) -> None:
    values = {"chunk_id": "c.1", "worker": "w", "token": "t", field: "a\tb"}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        codec.line_entry(**values)


@pytest.mark.parametrize("text", ["c.1", "c.1\tw", "c.1\tw\tt\tx"])
def test_what_is_not_a_line_entry_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^line entry: "):
        codec.read_line_entry(text)


@given(
    _no_space.filter(bool),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_a_grant_round_trips_to_the_microsecond(member: str, at: float, now: float) -> None:
    message = codec.read_wake(codec.wake_grant(member, at, now))
    assert message.member == member
    assert message.word == ""
    assert message.at == pytest.approx(at, abs=1e-6)
    assert message.now == pytest.approx(now, abs=1e-6)


@pytest.mark.parametrize("word", ["held", "stop", "paused", "canceled", "throttled"])
def test_a_word_round_trips(word: str) -> None:
    for member in (codec.IN_LINE, "a.b.c.1#3"):
        assert codec.read_wake(codec.wake_word(member, word)) == codec.WakeMessage(
            member, word=word
        )


@pytest.mark.parametrize(
    ("member", "word", "field"),
    [("a b#1", "held", "member"), ("a#1", "he ld", "word"), ("a#1", "12.5", "word")],
)
def test_a_wake_message_that_would_read_back_wrong_is_refused(
    member: str, word: str, field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        codec.wake_word(member, word)


@pytest.mark.parametrize("text", ["", "a#1", "a#1 1.0", "a#1 1.0 x", "a#1 1 2 3"])
def test_what_is_not_a_wake_message_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^wake message: "):
        codec.read_wake(text)


def test_the_lua_side_builds_what_python_reads(lua: Any) -> None:
    assert codec.read_member(lua("attempt_member(ARGV[1], 3)", "a.b.7")) == codec.Member("a.b.7", 3)
    assert codec.read_line_entry(
        lua("line_entry(ARGV[1], ARGV[2], ARGV[3])", "a.b.7", "", "tok")
    ) == codec.LineEntry("a.b.7", "", "tok")
    grant = codec.read_wake(lua("wake_grant(ARGV[1], 12.5, 10.25)", "a.b.7#3"))
    assert (grant.member, grant.at, grant.now) == ("a.b.7#3", 12.5, 10.25)
    assert codec.read_wake(lua("wake_word(IN_LINE, 'held')")) == codec.WakeMessage(
        codec.IN_LINE, word="held"
    )


def test_the_lua_side_reads_what_python_builds(lua: Any) -> None:
    member = codec.member("a.b#c.7", 4)
    assert lua("member_chunk(ARGV[1])", member) == "a.b#c.7"
    assert lua("tostring(member_chunk(ARGV[1]))", "probe:12ab") == "nil"
    entry = codec.line_entry("a.b.7", "w-1", "tok")
    got = lua("cjson.encode(read_line_entry(ARGV[1]))", entry)
    assert codec.line_entry(**_entry(got)) == entry


def _entry(encoded: str) -> dict[str, str]:
    parsed = json.loads(encoded)
    return {"chunk_id": parsed["c"], "worker": parsed["w"], "token": parsed["t"]}
