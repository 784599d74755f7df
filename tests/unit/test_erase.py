"""``outbox.erase``: after sends, events and a retry, the address is nowhere in Redis, the
records still read with the same counts, and a suppressed address is still refused."""

from __future__ import annotations

from typing import Any

from outbox import State, erase, send_email, status
from outbox.worker.runtime import Runtime


def everything(redis: Any) -> str:
    """Every key and value outbox keeps, as one text."""
    out = []
    for name in redis.scan_iter(match="{outbox}:*", count=1000):
        kind = redis.type(name).decode()
        out.append(name.decode())
        if kind == "string":
            out.append(repr(redis.get(name)))
        elif kind == "hash":
            out.append(repr(redis.hgetall(name)))
        elif kind == "list":
            out.append(repr(redis.lrange(name, 0, -1)))
        elif kind == "set":
            out.append(repr(redis.smembers(name)))
        elif kind == "zset":
            out.append(repr(redis.zrange(name, 0, -1)))
    return "\n".join(out).lower()


def test_an_erased_address_is_nowhere_and_the_records_still_add_up(runtime: Runtime) -> None:
    batches = runtime.store.batches
    runtime.store.suppressions.add("gone@example.org")
    handle = send_email(
        "s@example.com",
        ["Ann <Ann@Example.org>", "bob@example.org", "gone@example.org"],
        "Hi",
        text_body="Hello Ann",
        reply_to="ann@example.org",
    )
    chunk = f"{handle.id}.0"
    batches.claim(chunk, limit=runtime.send_limit, worker="w", token="t", max_wait=5)
    batches.finish(
        chunk,
        State.SENT,
        limit=runtime.send_limit,
        member=f"{chunk}#1",
        fields={"failures": ["ann@example.org: mailbox full"]},
        email_id="E1",
    )
    runtime.store.events.record(
        chunk, "ev1", {"event": "bounce", "rcpt": "ann@example.org"},
        fate="hard-bounced", recipients=["ann@example.org"],
    )  # fmt: skip
    before = status(handle.id)
    assert "ann@example.org" in everything(runtime.redis)

    changed = erase("ANN <ann@EXAMPLE.org>")
    assert changed >= 4  # the chunk, the payload, the ledger, the event
    assert "ann@example.org" not in everything(runtime.redis)
    after = status(handle.id)
    assert after.counts == before.counts
    assert after.ledger == before.ledger
    assert len(after.chunks[0].recipients) == 2
    assert "bob@example.org" in after.chunks[0].recipients
    # a suppressed address, once erased, is still refused and no longer readable
    assert erase("gone@example.org") >= 1
    assert "gone@example.org" not in everything(runtime.redis)
    again = send_email("s@example.com", ["gone@example.org", "bob@example.org"], "x", text_body="y")
    assert again.rejected == ("gone@example.org",)
    assert erase("nobody@example.org") == 0
