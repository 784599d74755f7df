from __future__ import annotations

import pytest

from outbox.chunking import address_key, chunk_count, dedupe, split


@pytest.mark.parametrize(("n", "chunks"), [(0, 0), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_chunk_count(n: int, chunks: int) -> None:
    assert chunk_count(n) == chunks
    items = [f"u{i}@example.com" for i in range(n)]
    parts = [split(items, i) for i in range(chunk_count(n))]
    assert [len(p) for p in parts] == [min(100, n - 100 * i) for i in range(chunks)]
    assert [item for part in parts for item in part] == items


def test_address_key_ignores_name_and_case() -> None:
    assert address_key("Ann Example <Ann@Example.COM>") == "ann@example.com"
    assert address_key("ann@example.com") == "ann@example.com"


def test_dedupe_keeps_first_list_and_first_occurrence() -> None:
    to, cc, bcc = dedupe(
        ["a@x.com", "A@X.com", "Bea <b@x.com>"],
        ["b@x.com", "c@x.com"],
        ["c@x.com", "d@x.com", "a@x.com"],
    )
    assert to == ["a@x.com", "Bea <b@x.com>"]
    assert cc == ["c@x.com"]
    assert bcc == ["d@x.com"]
