"""The records behind a real Sentinel (``OUTBOX_REDIS_URL=redis+sentinel://``): a master,
its replica and one Sentinel watching them, on free loopback ports.

A batch, a worker killed mid-batch and a dead letter replayed run as they do on one
server (:class:`~tests.integration.runs.RecordsElsewhere`); then the
Sentinel fails the master over while the workers run, and they carry on against the new
master.
"""

from __future__ import annotations

import pytest
import redis

from outbox import Handle, send_email
from outbox.core.states import State
from outbox.worker.runtime import Runtime
from support.procs import wait_until
from support.redis_servers import MASTER_NAME, Servers
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet, wait_all_done
from tests.integration.runs import SENDER, RecordsElsewhere
from tests.integration.test_faults import assert_intent, delivered

pytestmark = pytest.mark.integration


def _master(sentinel_port: int) -> int:
    with redis.Redis(port=sentinel_port, decode_responses=True) as sentinel:
        _, port = sentinel.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
    return int(port)


def _singles(name: str, n: int) -> list[Handle]:
    return [send_email(SENDER, [f"{name}{i}@example.com"], "x", text_body="y") for i in range(n)]


def _role(port: int) -> str:
    with redis.Redis(port=port, decode_responses=True) as client:
        return str(client.info("replication")["role"])


class TestBehindASentinel(RecordsElsewhere):
    @pytest.fixture
    def records_url(self, redis_sentinel: Servers) -> str:
        return redis_sentinel.url

    @pytest.mark.timeout(90)
    def test_a_failover_between_batches_is_followed_by_the_running_workers(
        self, fleet: Fleet, producer: Runtime, sandbox: Sandbox, redis_sentinel: Servers
    ) -> None:
        fleet.start(concurrency=10)
        first = _singles("before", 20)
        wait_all_done(first, timeout=30)

        watcher = redis_sentinel.ports[-1]
        old = _master(watcher)
        with redis.Redis(port=watcher) as sentinel:
            sentinel.execute_command("SENTINEL FAILOVER", MASTER_NAME)  # waits for the replica
        wait_until(lambda: _master(watcher) != old, timeout=30, what="the Sentinel to promote")
        new = _master(watcher)
        wait_until(lambda: _role(new) == "master" and _role(old) == "slave", timeout=30,
                   what="the old master to follow the new one")  # fmt: skip

        later = _singles("after", 20)
        records = wait_all_done(first + later, timeout=45)
        assert all(r.state is State.SENT for r in records)  # the records made before it survive
        outcome = assert_intent(records, delivered(sandbox))
        assert outcome.sent == 40
        assert producer.redis.connection_pool.get_master_address() == ("127.0.0.1", new)
