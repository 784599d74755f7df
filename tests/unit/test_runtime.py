"""The per-process runtime: warm-up before the first task."""

from __future__ import annotations

from typing import Any

from outbox.core.settings import Settings
from outbox.core.store import keys
from outbox.worker.runtime import Runtime


def test_warm_up_loads_every_script_and_opens_connections(redis_backend: Any) -> None:
    settings = Settings(SMTP2GO_API_KEY="api-" + "0" * 32, SMTP2GO_BASE_URL="http://127.0.0.1:9/v3")
    rt = Runtime.from_settings(settings, redis_client=redis_backend)
    redis_backend.script_flush()
    shas = [rt.store.batches._claim.sha, rt.store.batches._finish.sha, rt.store.parked._take.sha]
    assert redis_backend.script_exists(*shas) == [False, False, False]

    rt.warm_up(connections=4)

    assert redis_backend.script_exists(*shas) == [True, True, True]
    assert rt._client is not None  # the HTTP client is built, not left to the first task
    if hasattr(redis_backend, "get_node_from_key"):  # a cluster: the node of outbox's slot
        node = redis_backend.get_node_from_key(keys.PREFIX)
        pool = node.redis_connection.connection_pool
    else:
        pool = redis_backend.connection_pool
    assert len(pool._available_connections) >= 4
