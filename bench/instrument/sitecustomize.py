"""Counts a process's Redis round trips and commands, for benchmarks that ask for it.

The harness puts this folder first on ``PYTHONPATH`` of a ``celery -A outbox.worker worker``
it starts with ``count_redis=True``; Python imports ``sitecustomize`` at start-up, so
the worker runs unmodified while this counts what its redis-py connections send (the
records store and the kombu broker transport alike). Without
``BENCH_REDIS_COUNT_FILE`` in the environment it does nothing.

Every half second (and at exit) the counts go to ``$BENCH_REDIS_COUNT_FILE.<pid>``:
``{"pid", "round_trips", "commands": {name: n}}``. A plain command is one round trip;
a pipeline is one round trip however many commands it carries.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from collections import Counter
from typing import Any


def _install(path: str) -> None:
    from redis.connection import AbstractConnection

    lock = threading.Lock()
    commands: Counter[str] = Counter()
    totals = {"round_trips": 0}
    send_command = AbstractConnection.send_command
    pack_commands = AbstractConnection.pack_commands

    def name(args: Any) -> str:
        if not args:
            return "?"
        head = args[0]
        text = head.decode() if isinstance(head, bytes) else str(head)
        return text.split()[0].lower()

    def counted_send(conn: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            totals["round_trips"] += 1
            commands[name(args)] += 1
        return send_command(conn, *args, **kwargs)

    def counted_pack(conn: Any, cmds: Any) -> Any:
        cmds = list(cmds)
        with lock:
            totals["round_trips"] += 1
            for cmd in cmds:
                commands[name(cmd)] += 1
        return pack_commands(conn, cmds)

    AbstractConnection.send_command = counted_send  # type: ignore[method-assign,assignment]
    AbstractConnection.pack_commands = counted_pack  # type: ignore[method-assign,assignment]

    def dump() -> None:
        with lock:
            data = {"pid": os.getpid(), "round_trips": totals["round_trips"], "commands": commands}
            text = json.dumps(data)
        target = f"{path}.{os.getpid()}"
        with open(target + ".tmp", "w") as fh:
            fh.write(text)
        os.replace(target + ".tmp", target)

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(0.5):
            try:
                dump()
            except Exception:
                return

    threading.Thread(target=loop, name="bench-redis-count", daemon=True).start()
    atexit.register(dump)


if os.environ.get("BENCH_REDIS_COUNT_FILE"):
    with contextlib.suppress(Exception):  # never break the process being measured
        _install(os.environ["BENCH_REDIS_COUNT_FILE"])
