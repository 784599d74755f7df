"""Redis beyond one server, on loopback: a three-master cluster, a master watched by a
Sentinel. Shared by the tests and the benchmarks.

Each server runs in a directory of its own (a cluster node rewrites ``nodes.conf``, a
Sentinel its config file) and in its own process group, and is stopped by its pid. The
Sentinel is ``redis-sentinel`` when installed, else ``redis-server --sentinel`` (the
same program: Debian ships the ``redis-sentinel`` command in a package of its own).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

from support.procs import free_port, start, stop, wait_until

__all__ = ["MASTER_NAME", "Servers", "cluster", "missing", "sentinel"]

#: The name the Sentinel knows the master by (``redis+sentinel://.../outbox/0``).
MASTER_NAME = "outbox"

#: Neither persistence nor a fixed address: throwaway servers on free loopback ports.
_COMMON = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


@dataclass
class Servers:
    """Running servers and the ``OUTBOX_REDIS_URL`` that reaches them."""

    url: str
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


def missing(*programs: str) -> str | None:
    """Why these Redis topologies cannot run here (a missing program), or ``None``."""
    absent = [p for p in programs if shutil.which(p) is None]
    return f"{', '.join(absent)} not installed (apt-get install redis-server)" if absent else None


def _server(directory: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    cmd = ["redis-server", "--port", str(port), "--dir", str(directory), *_COMMON, *args]
    return start(cmd, log=directory / "redis.log", cwd=directory)


def _ports(n: int) -> list[int]:
    """``n`` distinct free ports (two calls of :func:`free_port` may return the same one)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _ask(port: int, *command: str) -> Any:
    with redis.Redis(port=port, socket_timeout=1) as client:
        return client.execute_command(*command)


def _answers(port: int) -> bool:
    return bool(_ask(port, "PING"))


@contextlib.contextmanager
def cluster(directory: Path, nodes: int = 3) -> Iterator[Servers]:
    """A cluster of ``nodes`` masters (no replicas) created with ``redis-cli --cluster``."""
    every = _ports(2 * nodes)
    ports, buses = every[:nodes], every[nodes:]
    servers = Servers(f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}", ports)
    try:
        for port, bus in zip(ports, buses, strict=True):
            # The bus port is chosen too: port + 10000 (the default) may be taken or > 65535.
            node = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            node += ["--cluster-port", str(bus), "--cluster-node-timeout", "5000"]
            servers.procs.append(_server(directory / str(port), port, *node))
        for port in ports:
            wait_until(partial(_answers, port), timeout=10, what=f"node {port}")
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")

        def formed() -> bool:
            return all(b"cluster_state:ok" in _ask(p, "CLUSTER", "INFO") for p in ports)

        wait_until(formed, timeout=30, what="the cluster to agree on its slots")
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def sentinel(directory: Path) -> Iterator[Servers]:
    """A master, a replica, and one Sentinel watching them (quorum 1, so it alone may fail
    the master over)."""
    master, replica, watcher = _ports(3)
    url = f"redis+sentinel://127.0.0.1:{watcher}/{MASTER_NAME}/0"
    servers = Servers(url, [master, replica, watcher])
    try:
        # No 5 s wait before the replica's first sync (the default, to batch replicas).
        servers.procs.append(
            _server(directory / "master", master, "--repl-diskless-sync-delay", "0")
        )
        servers.procs.append(
            _server(directory / "replica", replica, "--replicaof", "127.0.0.1", str(master))
        )
        conf = directory / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"port {watcher}\nbind 127.0.0.1\ndir {conf.parent}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 2000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        program = ["redis-sentinel"] if shutil.which("redis-sentinel") else ["redis-server"]
        cmd = [*program, str(conf), "--sentinel"]
        servers.procs.append(start(cmd, log=conf.parent / "sentinel.log", cwd=conf.parent))

        def synced() -> bool:
            with redis.Redis(port=replica, socket_timeout=1) as client:
                return client.info("replication").get("master_link_status") == "up"

        def watching() -> bool:
            found = _ask(watcher, "SENTINEL", "REPLICAS", MASTER_NAME)
            return len(found) >= 1

        wait_until(synced, timeout=20, what="the replica to sync")
        wait_until(watching, timeout=20, what="the Sentinel to find the replica")
        yield servers
    finally:
        servers.stop()
