"""The records on a real three-node Redis Cluster (``OUTBOX_REDIS_URL=redis+cluster://``).

Every script's keys carry one hash tag, so they share a slot and one node serves them
all; the workers find that node from any node named in the URL. A batch, a worker killed
mid-batch and a dead letter replayed run as they do on one server
(:mod:`tests.integration.records_elsewhere`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from outbox.worker.runtime import Runtime
from outbox.worker.store import keys
from support.redis_servers import Servers
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet
from tests.integration.records_elsewhere import (
    a_batch,
    a_dead_letter_replayed,
    a_worker_killed_mid_batch,
    records_at,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def records(
    redis_cluster: Servers, redis_db: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    yield from records_at(redis_cluster.url, monkeypatch)


@pytest.mark.timeout(90)
def test_a_batch_on_the_cluster(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox, redis_cluster: Servers
) -> None:
    a_batch(fleet, producer, sandbox)
    # Everything is on the node that serves the hash tag's slot, nothing on the others.
    slot = producer.redis.keyslot(keys.PREFIX)
    holder = producer.redis.get_node_from_key(keys.PREFIX).port
    sizes = {port: redis.Redis(port=port).dbsize() for port in redis_cluster.ports}
    assert sizes.pop(holder) > 100, (slot, sizes)
    assert set(sizes.values()) == {0}


@pytest.mark.timeout(90)
def test_sigkill_mid_batch_on_the_cluster_then_a_new_worker_finishes_exactly_once(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    a_worker_killed_mid_batch(fleet, producer, sandbox)


@pytest.mark.timeout(90)
def test_a_dead_letter_replays_on_the_cluster(
    fleet: Fleet, producer: Runtime, sandbox: Sandbox
) -> None:
    a_dead_letter_replayed(fleet, producer, sandbox)
