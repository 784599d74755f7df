"""Splitting recipient lists into API-sized chunks.

The API takes at most 100 addresses in each of ``to``, ``cc`` and ``bcc``. A larger
list becomes several requests; each is its own task, so one chunk's retry never resends
another's. The rules that keep everybody at exactly one copy:

* an address appears once: a repeat in the same list, or in a later list
  (``to`` before ``cc`` before ``bcc``), is dropped, compared case-insensitively on the
  address part (``"Ann <a@x.com>"`` and ``"A@X.COM"`` are the same person);
* chunk *i* carries ``to[100i:100i+100]``, ``cc[100i:...]`` and ``bcc[100i:...]``, so
  each cc and bcc address travels with exactly one ``to`` chunk;
* every request needs at least one ``to``, so ``cc`` and ``bcc`` may not need more
  chunks than ``to`` fills; such a call is refused (split it yourself) rather than
  sending the ``to`` recipients several copies.

A consequence worth knowing: recipients of chunk *i* see only chunk *i*'s To and Cc
headers. Use ``bcc`` or one message per recipient when the lists are private.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from outbox.core.smtp2go.models import MAX_RECIPIENTS, address_key

__all__ = ["MAX_RECIPIENTS", "address_key", "chunk_count", "dedupe", "split"]


def dedupe(*lists: Iterable[str]) -> list[list[str]]:
    """Each list without addresses already seen in it or in an earlier list."""
    seen: set[str] = set()
    out: list[list[str]] = []
    for items in lists:
        kept = []
        for item in items:
            k = address_key(item)
            if k not in seen:
                seen.add(k)
                kept.append(item)
        out.append(kept)
    return out


def chunk_count(n: int, size: int = MAX_RECIPIENTS) -> int:
    return -(-n // size)


def split(items: Sequence[str], index: int, size: int = MAX_RECIPIENTS) -> list[str]:
    """Chunk ``index`` of ``items``."""
    return list(items[index * size : (index + 1) * size])
