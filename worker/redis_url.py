"""A Redis client from ``OUTBOX_REDIS_URL``: one server, Redis Cluster, or Sentinel.

=========================================================  ==============================
``redis://[:pw@]host:port/db``, ``rediss://...``            one server (TLS with rediss)
``redis+cluster://[:pw@]host:port[,host:port...]``          a cluster, from any of its nodes
``redis+sentinel://[:pw@]host:port[,host:port...]/name/db`` the master Sentinel names ``name``
=========================================================  ==============================

Every outbox key carries one hash tag (:mod:`outbox.worker.store.keys`), so each script's
keys share a slot on a cluster. The client keeps its connections alive (TCP keepalive)
and has no socket timeout: a sender blocks on ``BLPOP`` for as long as its slot is away.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis

__all__ = ["connect"]


def _nodes(netloc: str) -> tuple[str | None, list[tuple[str, int]]]:
    auth, _, hosts = netloc.rpartition("@")
    password = unquote(auth.partition(":")[2]) if auth else None
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        nodes.append((name.strip("[]") or "127.0.0.1", int(port or 6379)))
    return password or None, nodes


def connect(url: str) -> Any:
    """A client for ``url`` (see the module's table); raises ``ValueError`` for others."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return redis.Redis.from_url(url, socket_keepalive=True)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from redis.cluster import ClusterNode, RedisCluster

        password, nodes = _nodes(parts.netloc)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            password=password,
            ssl=scheme.startswith("rediss"),
            socket_keepalive=True,
        )
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        from redis.sentinel import Sentinel

        password, nodes = _nodes(parts.netloc)
        service, _, db = parts.path.strip("/").partition("/")
        if not service:
            raise ValueError(f"{url!r}: name the master after the hosts (/mymaster/1)")
        sentinel = Sentinel(nodes, socket_keepalive=True, sentinel_kwargs={"password": password})
        return sentinel.master_for(
            service,
            db=int(db or 0),
            password=password,
            ssl=scheme.startswith("rediss"),
            socket_keepalive=True,
        )
    raise ValueError(
        f"OUTBOX_REDIS_URL={url!r}: expected redis://, rediss://, redis+cluster:// or "
        "redis+sentinel://"
    )
