"""The records on a real three-node Redis Cluster (``OUTBOX_REDIS_URL=redis+cluster://``).

Every script's keys carry one hash tag, so they share a slot and one node serves them
all; the workers find that node from any node named in the URL. A batch, a worker killed
mid-batch and a dead letter replayed run as they do on one server
(:class:`~tests.integration.runs.RecordsElsewhere`).
"""

from __future__ import annotations

import pytest
import redis

from outbox.core.store import keys
from outbox.worker.runtime import Runtime
from support.redis_servers import Servers
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet
from tests.integration.runs import RecordsElsewhere

pytestmark = pytest.mark.integration


class TestOnACluster(RecordsElsewhere):
    @pytest.fixture
    def records_url(self, redis_cluster: Servers) -> str:
        return redis_cluster.url

    @pytest.mark.timeout(90)
    def test_a_batch(self, fleet: Fleet, producer: Runtime, sandbox: Sandbox) -> None:
        super().test_a_batch(fleet, producer, sandbox)
        # Everything is on the node that serves the hash tag's slot, nothing on the others.
        holder = producer.redis.get_node_from_key(keys.PREFIX).port
        sizes = {n.port: redis.Redis(port=n.port).dbsize() for n in producer.redis.get_primaries()}
        assert len(sizes) == 3
        assert sizes.pop(holder) > 100
        assert set(sizes.values()) == {0}
