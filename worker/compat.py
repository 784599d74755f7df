"""Work-arounds for defects in the libraries outbox runs on.

Each one names the defect, what it does to a running fleet and why the work-around
is safe; ``tests/integration/test_compat.py`` reproduces each defect against a real
Redis, so a library release that fixes it (or changes the code around it) shows up
as a failing test rather than as a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["install"]

_original_connparams: Callable[..., Any] = kombu_redis.Channel._connparams


def _connparams(self: Any, asynchronous: bool = False) -> Any:
    """Raise a connection error, not ``AttributeError``, on a channel that lost its
    connection.

    kombu's Redis channel builds a client lazily from ``self.connection.client``.
    After a lost broker connection that is ``None`` in two places Celery 5.7 then
    reaches: the second of its two closes of the default channel
    (``Connection.collect()`` detaches the transport, ``Connection.close()`` then
    tries to requeue the worker's unacknowledged deliveries), and the acknowledgement
    or rejection of a task that was still running when the connection dropped and
    finished after the channel was closed. Both raised ``AttributeError``, which
    Celery does not count as a connection error: "Unrecoverable error", the worker
    exits, and on a restarting Redis every worker could die at once.

    As a connection error, the first is ignored by kombu's close and the second is
    logged by Celery ("Couldn't ack"); the worker reconnects. Nothing is lost: a chunk
    whose message was taken is claimed under a lease, or still in the unclaimed index,
    and the relay (``outbox.worker.relay``) publishes it again when either runs out;
    the claim then finds a chunk already sent and sends nothing twice.
    """
    transport = self.connection
    if transport is None or transport.client is None:
        raise redis.exceptions.ConnectionError("broker channel closed: its connection was lost")
    return _original_connparams(self, asynchronous=asynchronous)


def install() -> None:
    """Patch kombu once per process; idempotent."""
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
