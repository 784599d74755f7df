"""Every key outbox touches carries its hash tag, so each script's keys share one slot.

A real Redis is watched with ``MONITOR`` while the store runs every one of its scripts
and the plain commands around them; each command seen (those a script issues from Lua
included) is handed to ``COMMAND GETKEYS``, the server's own reading of which arguments
are keys. A key built inside a script from anything but :mod:`outbox.core.store.keys`
(or a script handed ``""`` for an optional key) shows here, where a single server would
have run it without complaint and a cluster would refuse it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import redis

from outbox.core.queues import Queue, TaskName
from outbox.core.states import Kind, State
from outbox.core.store import Store, keys, scripts
from outbox.core.store.batches import PAGE
from outbox.core.store.chunks import ChunkSpec, chunk_id_for
from outbox.core.store.limits import Limit
from outbox.core.store.parked import Call
from outbox.core.text import as_text
from outbox.core.windows import Window

DB = 13
B1 = "e" * 31 + "1"
#: One request a minute: the second claim waits in line, so the line's scripts run too.
TIGHT = Limit("send", (Window(1, 60.0),), lease=30.0, ttl=3600, line_lease=60.0)
ROOMY = Limit("send", (Window(1000, 1.0),), lease=30.0, ttl=3600, line_lease=60.0)
_END = "outbox-key-slots-end"

#: A ``MONITOR`` line: ``<time> [<db> <client>] "arg" "arg" ...``.
_LINE = re.compile(r"^[\d.]+ \[(\d+) ([^\]]+)\] (.*)$", re.DOTALL)
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b", '"': b'"', "\\": b"\\"}


def _unquote(text: str) -> bytes:
    """One argument as ``MONITOR`` quotes it (``sdscatrepr``) back to its bytes."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1] == "x":
            out += bytes([int(text[i + 2 : i + 4], 16)])
            i += 4
        elif text[i] == "\\":
            out += _ESCAPES[text[i + 1]]
            i += 2
        else:
            out += text[i].encode()
            i += 1
    return bytes(out)


def parse(line: str) -> tuple[int, str, list[bytes]] | None:
    """``(db, client, args)`` of a ``MONITOR`` line, or ``None`` for another reply."""
    found = _LINE.match(line)
    if found is None:
        return None
    db, client, rest = found.groups()
    return int(db), client, [_unquote(arg) for arg in _ARG.findall(rest)]


def test_parse_reads_monitor_quoting_back() -> None:
    line = r'1.5 [13 lua] "HSET" "{outbox}:chunk:a" "f" "say \"hi\"\n\x00\\"'
    assert parse(line) == (13, "lua", [b"HSET", b"{outbox}:chunk:a", b"f", b'say "hi"\n\x00\\'])
    assert parse("OK") is None


class Monitor:
    """The commands a Redis server runs on database :data:`DB` while it is watched."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[tuple[str, list[bytes]]] = []
        self._conn = redis.ConnectionPool.from_url(url).get_connection()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> Monitor:
        self._conn.send_command("MONITOR")
        assert self._conn.read_response() in (b"OK", "OK")
        self._thread.start()
        return self

    def _read(self) -> None:
        while True:
            raw = self._conn.read_response()
            text = as_text(raw, errors="replace")
            parsed = parse(text)
            if parsed is None:
                continue
            db, client, args = parsed
            if args[:2] == [b"ECHO", _END.encode()]:
                return
            if db == DB:
                self.commands.append((client, args))

    def __exit__(self, *exc: object) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.echo(_END)
        self._thread.join(10)
        self._conn.disconnect()


def keys_of(client: redis.Redis, args: list[bytes]) -> list[str]:
    """The keys among a command's arguments, as the server reads them."""
    if len(args) < 2:
        return []  # a command alone (TIME, MULTI, EXEC) has no argument to be a key
    try:
        found = client.command_getkeys(*args)
    except redis.ResponseError as exc:
        if "no key arguments" in str(exc) or "Invalid command" in str(exc):
            return []
        raise
    return [as_text(k) for k in found]


@pytest.fixture
def real_redis() -> Iterator[redis.Redis]:
    url = os.environ["OUTBOX_REDIS_URL"].rsplit("/", 1)[0] + f"/{DB}"
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url} to watch")
    client.flushdb(asynchronous=True)
    yield client
    client.flushdb(asynchronous=True)
    client.close()


def every_script() -> dict[str, str]:
    """``sha -> name`` of every script the store runs (the libraries are in each)."""
    folder = resources.files("outbox.core.store").joinpath("lua")
    names = [p.name.removesuffix(".lua") for p in folder.iterdir() if p.name.endswith(".lua")]
    return {
        hashlib.sha1(scripts.source(n).encode()).hexdigest(): n
        for n in names
        if n not in scripts._LIBRARIES
    }


def run_everything(store: Store) -> None:
    """Each script at least once, and the plain reads and writes around them."""
    specs = [
        ChunkSpec(chunk_id_for(B1, i), i, [f"u{i}@example.com"], {"to": [f"u{i}@example.com"]})
        for i in range(4)
    ]
    batches = store.batches
    batches.create(B1, kind=Kind.EMAIL, chunks=specs, payload={}, queue=Queue.EMAIL)
    big = "c" * 32
    pages = [ChunkSpec(chunk_id_for(big, i), i, [f"b{i}@example.com"]) for i in range(PAGE + 1)]
    batches.create(big, kind=Kind.EMAIL, chunks=pages, payload={}, queue=Queue.BULK)
    batches.pause(big, [p.id for p in pages[:3]], limit=ROOMY, who="test")
    batches.resume(big, [p.id for p in pages[:3]], limit=ROOMY)
    batches.cancel(big, [p.id for p in pages[:3]], limit=ROOMY, who="test", whole=True)
    batches.discard(big, len(pages))
    batches.create("f" * 32, kind=Kind.SMS, chunks=[], payload={}, queue=Queue.SMS,
                   idempotency_key="order-7", refused=[("+61400000000", "suppressed")])  # fmt: skip

    def claim(i: int, limit: Limit = ROOMY, worker: str = "w1") -> Any:
        return batches.claim(
            chunk_id_for(B1, i), limit=limit, worker=worker, token=f"t{i}", max_wait=60
        )

    first = claim(0, TIGHT)
    waiting = claim(1, TIGHT)
    assert waiting.outcome.value == "waiting"
    assert batches.leave_line(waiting.chunk_id, limit=TIGHT, worker="w1", token="t1")
    later = (Call(TaskName.SEND_EMAIL, chunk=chunk_id_for(B1, 2)), store.now() - 1)
    batches.finish(first.chunk_id, State.SENT, limit=TIGHT, member=first.member,
                   email_id="E1", park=later)  # fmt: skip
    batches.give_back(claim(1), limit=ROOMY, note="stopping")
    dead = claim(3)
    batches.finish(dead.chunk_id, State.DEAD, limit=ROOMY, member=dead.member)
    assert batches.replay(dead.chunk_id)
    batches.bury_orphan("d" * 32 + ".0", kind=Kind.SMS, error={"type": "InvalidPayload"})
    store.events.record(chunk_id_for(B1, 0), "ev1", {"event": "delivered"},
                        fate="delivered", recipients=["u0@example.com"])  # fmt: skip
    store.events.park_unmatched({"email_id": "nobody"}, keep=10)
    store.parked.park(Call(TaskName.SEND_EMAIL, chunk=chunk_id_for(B1, 3)), store.now() + 60)
    store.parked.wait(0.01)
    due = store.parked.take(lease=30)
    for _, member in due.calls:
        store.parked.release(member)
    limits = store.limits
    granted, _ = limits.acquire(ROOMY, "probe#1", max_wait=1)
    assert granted
    limits.release(ROOMY, "probe#1", went_out=True)
    limits.cool_down(ROOMY, 0.5)
    limits.cooling_for()
    limits.hold(ROOMY, "key rejected")
    limits.release_hold(ROOMY)
    limits.stop_waiting(ROOMY, [chunk_id_for(B1, 2)])
    limits.serve(ROOMY)
    lock = store.scans.exclusive(5)
    assert lock is not None
    store.scans.write({chunk_id_for(B1, 0): "E1"}, started=1.0, since=0.0, complete=True, ttl=60)
    store.scans.read(chunk_id_for(B1, 0))
    lock.release()
    store.suppressions.add("bounced@example.com")
    store.suppressions.matching(["bounced@example.com", "ann@example.com"])
    store.suppressions.remove("bounced@example.com")
    store.suppressions.add_synced(["bounced@example.com"], since=store.now())
    store.account.take_turn("probe", 5)
    store.account.set_quota_left(10, until=store.now() + 60)
    store.account.throttled()
    store.unclaimed.older_than_many({"email": store.now()})
    store.account.save_quota({"cycle_max": 1000})
    store.unclaimed.forget(Queue.EMAIL.value, [chunk_id_for(B1, 3)])
    batches.chunks([chunk_id_for(B1, i) for i in range(4)])
    batches.fields([B1], ["chunks"])
    batches.ledger(B1)


def test_every_key_any_command_touches_carries_the_hash_tag(real_redis: redis.Redis) -> None:
    store = Store.connect(real_redis, retention=3600)
    where = real_redis.connection_pool.connection_kwargs
    with Monitor(f"redis://{where['host']}:{where['port']}/{DB}") as watched:
        run_everything(store)

    ran = {args[1].decode() for _, args in watched.commands if args[0].upper() == b"EVALSHA"}
    assert set(every_script()) - ran == set(), "scripts never run here: add them"
    from_lua = [args for client, args in watched.commands if client == "lua"]
    assert len(from_lua) > 100  # the scripts' own commands are watched too
    outside: list[str] = []
    seen = 0
    for _, args in watched.commands:
        for key in keys_of(real_redis, args):
            seen += 1
            if not key.startswith(keys.PREFIX):
                outside.append(f"{key!r} in {b' '.join(args[:3])!r}")
    assert seen > 100
    assert outside == []
