"""The broker's own Redis, for what looks beneath Celery: the relay's search for messages
taken but never claimed, and the queue-depth gauges of a metrics scrape."""

from __future__ import annotations

from typing import Any

__all__ = ["broker_client"]


def broker_client() -> Any:
    """A client of the Redis broker, or ``None`` for another broker (RabbitMQ keeps its
    own acknowledgements: nothing can be lost between a fetch and a claim there).

    The URL is the one the worker consumes from (``broker_read_url``, else
    ``broker_url``), as Celery resolves it, not ``CELERY_BROKER_URL`` read again."""
    from outbox.worker.celery_app import app

    connection = app.connection_for_read()
    try:
        url = connection.as_uri(include_password=True)
    finally:
        connection.release()
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_keepalive=True)
