"""With ``--redis``: what the demo leaves behind in the databases it used.

The demo keeps its records for an hour (``OUTBOX_RETENTION``), long enough to look at
them with ``outbox status``, and every record key expires by then. A few keys it writes
have no expiry of their own or a later one: kombu's queue bindings in the broker's
database, the quota read's allowance left (kept until the month's end), the throttled
and dead-letter sets. Those, when the demo created them, are removed at the end; keys
that were there before the run are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Tidy"]

#: Keys whose expiry is asked for in one pipeline.
_BATCH = 500


class Tidy:
    """Notes the keys of some databases before the run; removes the lasting new ones after."""

    def __init__(self, urls: Iterable[str], keep_for: int) -> None:
        self.urls = list(urls)
        self.keep_for = keep_for
        self._before: dict[str, set[bytes]] = {}

    @staticmethod
    def _client(url: str) -> Any:
        import redis

        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)

    def note(self) -> None:
        """The keys there before the demo writes anything."""
        for url in self.urls:
            client = self._client(url)
            try:
                self._before[url] = set(client.scan_iter(count=1000))
            finally:
                client.close()

    def sweep(self) -> int:
        """Remove the keys the run created that would outlive ``keep_for``; how many."""
        removed = 0
        for url in self.urls:
            before = self._before.get(url)
            if before is None:
                continue  # never noted: nothing can be told apart
            client = self._client(url)
            try:
                new = [k for k in client.scan_iter(count=1000) if k not in before]
                for start in range(0, len(new), _BATCH):
                    removed += self._remove_lasting(client, new[start : start + _BATCH])
            finally:
                client.close()
        return removed

    def _remove_lasting(self, client: Any, names: list[bytes]) -> int:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.ttl(name)
        # -1: no expiry; -2: gone meanwhile.
        lasting = [
            n
            for n, ttl in zip(names, pipe.execute(), strict=True)
            if ttl == -1 or ttl > self.keep_for
        ]
        return int(client.delete(*lasting)) if lasting else 0
