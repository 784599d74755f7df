"""``OUTBOX_REDIS_URL``: one server, a cluster, a Sentinel; passwords never shown."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from outbox.core.redis_url import connect, redacted_url
from support.procs import free_port
from support.redis_servers import MASTER_NAME, Servers


def test_one_server() -> None:
    client = connect("redis://:pw@127.0.0.1:6380/4")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"], kwargs["password"]) == (6380, 4, "pw")
    assert kwargs["socket_keepalive"] is True
    # redis-py 8 reads with a 5 s timeout by default: a sender waiting longer in line (a
    # per-minute limit) and an idle relay's wait would fail with TimeoutError.
    assert kwargs["socket_timeout"] is None


def test_sentinel_url_names_the_sentinels_the_master_and_both_passwords() -> None:
    client = connect(
        "redis+sentinel://app:p%40ss@s1,s2:26380,[::1]:26381/orders/3?sentinel_password=watch"
    )
    pool = client.connection_pool
    assert pool.service_name == "orders"
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (3, "app", "p@ss")
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [
        ("s1", 26379),
        ("s2", 26380),
        ("::1", 26381),
    ]
    assert {s.get("password") for s in sentinels} == {"watch"}


def test_a_sentinel_without_a_password_is_sent_none() -> None:
    client = connect("redis+sentinel://:secret@127.0.0.1:26379/outbox")
    sentinel = client.connection_pool.sentinel_manager.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs.get("password") is None
    assert client.connection_pool.connection_kwargs["db"] == 0


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://127.0.0.1:26379", "name the master"),
        ("redis+sentinel://127.0.0.1:26379/outbox/0?password=x", "sentinel_password"),
        ("redis+cluster://127.0.0.1:7000/2", "database 0 only"),
        ("redis+cluster://:7000", "a host is missing"),
        ("memcached://:hunter2@127.0.0.1:11211", "expected redis://"),
    ],
)
def test_bad_urls_are_refused_without_showing_a_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        connect(url)
    assert "hunter2" not in str(caught.value)


def test_a_cluster_nobody_answers_is_unreachable_not_a_bug() -> None:
    with pytest.raises(redis.ConnectionError, match="cannot be connected"):
        connect(f"redis+cluster://:s3cret@127.0.0.1:{free_port()}")


def test_a_cluster_is_found_from_one_node(redis_cluster: Servers) -> None:
    client = connect(f"redis+cluster://127.0.0.1:{redis_cluster.ports[-1]}")
    try:
        assert isinstance(client, RedisCluster)
        assert sorted(n.port for n in client.get_primaries()) == sorted(redis_cluster.ports)
        client.set("{outbox}:probe", "1", ex=5)
        node = client.get_node_from_key("{outbox}:probe")
        assert redis.Redis(port=node.port).get("{outbox}:probe") == b"1"
    finally:
        client.close()


def test_no_client_times_a_blocking_wait_out(
    redis_cluster: Servers, redis_sentinel: Servers
) -> None:
    """A sender waits on ``BLPOP`` as long as its slot is away, a relay until its next
    item is due. redis-py gives cluster connections a 5 s read timeout, and retried every
    longer ``BLPOP`` on a new connection, for ever: a killed worker's sends were never
    relayed on a cluster."""
    for url in (f"redis+cluster://127.0.0.1:{redis_cluster.ports[0]}", redis_sentinel.url):
        client: Any = connect(url)
        try:
            if isinstance(client, RedisCluster):
                pool = client.get_node_from_key("{outbox}:x").redis_connection.connection_pool
            else:
                pool = client.connection_pool
            connection = pool.get_connection()
            assert connection.socket_timeout is None, url
            pool.release(connection)
        finally:
            client.close()


def test_a_sentinel_url_reaches_the_master(redis_sentinel: Servers) -> None:
    client: Any = connect(redis_sentinel.url)
    try:
        assert client.info("replication")["role"] == "master"
        with redis.Redis(port=redis_sentinel.ports[-1], decode_responses=True) as sentinel:
            host, port = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        assert client.connection_pool.get_master_address() == (host, int(port))
        assert int(port) in redis_sentinel.ports[:2]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
        ("redis://:s3cret@10.0.0.5:6379/1", "redis://:***@10.0.0.5:6379/1"),
        ("redis://app:s3cret@cache/0", "redis://app:***@cache/0"),
        ("redis+cluster://:s3cret@a:7000,b:7001", "redis+cluster://:***@a:7000,b:7001"),
        (
            "redis+sentinel://s1,s2/outbox/1?sentinel_password=s3cret",
            "redis+sentinel://s1,s2/outbox/1?sentinel_password=***",
        ),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
