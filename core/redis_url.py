"""A Redis client from ``OUTBOX_REDIS_URL``: one server, Redis Cluster, or Sentinel.

=====================================================  ==================================
``redis://[user:pw@]host:port/db``                     one server (``rediss://``: TLS)
``redis+cluster://[user:pw@]host:port,host:port``      a cluster, found from any of the
                                                       nodes listed (database 0 only)
``redis+sentinel://[user:pw@]host:port,.../name/db``   the master the Sentinels listed
                                                       know as ``name``
=====================================================  ==================================

``rediss+cluster://`` and ``rediss+sentinel://`` speak TLS to the data nodes. A port left
out is 6379, or 26379 for a Sentinel; IPv6 addresses go in brackets. The user and
password are the data nodes'; Sentinels that want their own take them from the query:
``?sentinel_username=...&sentinel_password=...``.

Every outbox key carries one hash tag (:mod:`outbox.core.store.keys`), so each script's
keys share a slot on a cluster. The client keeps its connections alive (TCP keepalive)
and has no socket timeout: a sender blocks on ``BLPOP`` for as long as its slot is away.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis

__all__ = ["connect", "redacted_url"]

_SENTINEL_PORT = 26379


def _credentials(netloc: str) -> tuple[str | None, str | None, str]:
    """``(username, password, the hosts part)`` of a URL's network location."""
    auth, _, hosts = netloc.rpartition("@")
    user, _, password = auth.partition(":")
    return unquote(user) or None, unquote(password) or None, hosts


def _hosts(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """``host[:port]`` items, comma-separated; IPv6 addresses in brackets."""
    out = []
    for item in hosts.split(","):
        item = item.strip()
        if item.startswith("["):  # [::1] or [::1]:7000
            name, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            name, _, port = item.partition(":")
        if not name:
            raise ValueError(f"{hosts!r}: a host is missing")
        out.append((name, int(port) if port else default_port))
    return out


def _sentinel_auth(query: str) -> dict[str, str]:
    params = parse_qs(query)
    unknown = set(params) - {"sentinel_username", "sentinel_password"}
    if unknown:
        raise ValueError(f"{sorted(unknown)}: expected sentinel_username, sentinel_password")
    return {name.removeprefix("sentinel_"): values[-1] for name, values in params.items()}


def connect(url: str) -> Any:
    """A client for ``url`` (see the module's table); raises ``ValueError`` for others.

    A cluster none of whose nodes answers raises ``redis.ConnectionError``, as a single
    server would (redis-py says ``RedisClusterException``, which no caller would take
    for an outage)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        # No read timeout (redis-py 8 gives 5 s): a sender waits on BLPOP as long as its
        # slot is away, a relay until its next item is due; keepalive finds a dead peer.
        return redis.Redis.from_url(url, socket_keepalive=True, socket_timeout=None)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from redis.cluster import ClusterNode, RedisCluster
        from redis.exceptions import RedisClusterException

        if parts.path.strip("/") not in ("", "0"):
            raise ValueError(f"{redacted_url(url)}: a cluster has database 0 only")
        username, password, hosts = _credentials(parts.netloc)
        nodes = [ClusterNode(host, port) for host, port in _hosts(hosts, 6379)]
        try:
            return RedisCluster(
                startup_nodes=nodes,
                username=username,
                password=password,
                ssl=scheme.startswith("rediss"),
                socket_keepalive=True,
                # redis-py gives cluster connections a 5 s read timeout, after which a
                # longer BLPOP is retried on a new connection, over and over.
                socket_timeout=None,
            )
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"{redacted_url(url)}: {exc}") from exc
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        from redis.sentinel import Sentinel

        username, password, hosts = _credentials(parts.netloc)
        service, _, db = parts.path.strip("/").partition("/")
        if not service:
            raise ValueError(f"{redacted_url(url)}: name the master after the hosts (/mymaster/1)")
        sentinel = Sentinel(
            _hosts(hosts, _SENTINEL_PORT),
            sentinel_kwargs={"socket_keepalive": True, **_sentinel_auth(parts.query)},
        )
        return sentinel.master_for(
            service,
            db=int(db or 0),
            username=username,
            password=password,
            ssl=scheme.startswith("rediss"),
            socket_keepalive=True,
            socket_timeout=None,
        )
    raise ValueError(
        f"OUTBOX_REDIS_URL={redacted_url(url)}: expected redis://, rediss://, redis+cluster:// "
        "or redis+sentinel://"
    )


def redacted_url(url: str) -> str:
    """``url`` without its passwords (the nodes', a Sentinel's), for messages a person reads."""
    parts = urlsplit(url)
    auth, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in auth:
        auth = auth.partition(":")[0] + ":***"
    query = "&".join(
        f"{name}=***" if "password" in name else f"{name}{eq}{value}"
        for name, eq, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit(parts._replace(netloc=f"{auth}{at}{hosts}", query=query))
