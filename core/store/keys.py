"""Every Redis key outbox writes, in one place.

Every key starts with ``{outbox}:``. The braces are a Redis Cluster hash tag: all keys
hash to one slot, so every script's keys share it and one Lua call can move a chunk, its
batch, the indexes and the rate-limit windows together. (On a cluster that gives
availability, not sharding: one shard holds outbox's data.) The prefix also lets one
Redis serve other data beside outbox.

Every write sets a TTL (the retention) except the dead-letter index, the suppression
set, the account hold and the metrics' tally, which an operator (or the worker that
clears a hold) empties on purpose, and the indexes that empty themselves as their
members move on: the throttled set (a quota read with room releases it) and the
callbacks due (published). The Lua scripts build the keys of chunks they reach through
a rate-limit line from the same templates (:data:`TEMPLATES`), never from literals of their own.

A script that takes an optional key is given :func:`absent` in its place, never an empty
name: ``""`` hashes to another slot, and a cluster refuses a call whose keys disagree.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "TEMPLATES",
    "absent",
    "account_hold",
    "active",
    "batch",
    "batch_payload",
    "callbacks_due",
    "chunk",
    "chunk_events",
    "chunk_log",
    "cooldown",
    "dead_letters",
    "email_index",
    "erase_key",
    "erased",
    "failed_letters",
    "idempotency",
    "lane",
    "lane_meta",
    "lane_tenant",
    "leases",
    "ledger",
    "ledger_counts",
    "limit_granted",
    "limit_line",
    "limit_window",
    "pace",
    "parked",
    "permissions",
    "quota",
    "quota_left",
    "reconcile_found",
    "reconcile_scanned",
    "reconcile_scanning",
    "relay_wake",
    "sms_index",
    "staged",
    "stats_snapshot",
    "suppressed",
    "suppressed_erased",
    "suppressed_lifted",
    "tally",
    "tenant_window",
    "throttled",
    "turn",
    "unclaimed",
    "wake",
    "webhook_unmatched",
]

PREFIX = "{outbox}:"

#: Templates (``{}`` for each argument) the Lua scripts need, by the name they use.
TEMPLATES: dict[str, str] = {
    "batch": PREFIX + "batch:{}",
    "callbacks_due": PREFIX + "callbacks:due",
    "chunk": PREFIX + "chunk:{}",
    "chunk_log": PREFIX + "chunk:{}:log",
    "ledger": PREFIX + "batch:{}:ledger",
    "ledger_counts": PREFIX + "batch:{}:ledger:counts",
    "quota_left": PREFIX + "quota:left",
    "relay_wake": PREFIX + "relay:wake",
    "sms_index": PREFIX + "sms:{}",
    "throttled": PREFIX + "throttled",
    "unclaimed": PREFIX + "unclaimed:{}",
    "wake": PREFIX + "limit:{}:wake:{}",
    "parked": PREFIX + "parked",
    "staged": PREFIX + "staged",
    "pace": PREFIX + "limit:{}:pace",
    "lane": PREFIX + "limit:{}:lane:{}",
    "lane_tenant": PREFIX + "limit:{}:lane:{}:tenant:{}",
    "lane_meta": PREFIX + "limit:{}:lane:{}:meta",
    "tenant_window": PREFIX + "limit:{}:tenant:{}:{}:{}",
    "tally": PREFIX + "tally",
}


def _fill(name: str, *values: str) -> str:
    """A template with its ``{}`` filled in order (the prefix's braces are literal)."""
    parts = TEMPLATES[name].split("{}")
    return parts[0] + "".join(v + rest for v, rest in zip(values, parts[1:], strict=True))


def absent() -> str:
    """Never read or written: stands in a script's place of an optional key not given."""
    return f"{PREFIX}absent"


def batch(batch_id: str) -> str:
    """Hash: one producer call (kind, counts per state, callback, ...)."""
    return _fill("batch", batch_id)


def batch_payload(batch_id: str) -> str:
    """String: the payload shared by the batch's chunks (JSON), kept for replay and sweeps."""
    return f"{PREFIX}batch:{batch_id}:payload"


def ledger(batch_id: str) -> str:
    """Hash: every recipient of a batch -> its fate (JSON), kept as records change."""
    return _fill("ledger", batch_id)


def ledger_counts(batch_id: str) -> str:
    """Hash: how many recipients of a batch are in each ledger state."""
    return _fill("ledger_counts", batch_id)


def chunk(chunk_id: str) -> str:
    """Hash: one API request's worth of recipients (:class:`~.chunks.StoredChunk`)."""
    return _fill("chunk", chunk_id)


def chunk_log(chunk_id: str) -> str:
    """List: every transition of a chunk, oldest first (JSON entries)."""
    return _fill("chunk_log", chunk_id)


def chunk_events(chunk_id: str) -> str:
    """Hash: delivery events from webhooks, keyed by event id so repeats collapse."""
    return f"{PREFIX}chunk:{chunk_id}:events"


def email_index(email_id: str) -> str:
    """String: SMTP2GO ``email_id`` -> chunk id, so webhook events find their record."""
    return f"{PREFIX}email:{email_id}"


def sms_index(message_id: str) -> str:
    """String: SMTP2GO's SMS ``message_id`` -> chunk id, so SMS webhook events find their
    record (written by ``finish.lua`` from the chunk's ``message_ids``)."""
    return _fill("sms_index", message_id)


def idempotency(key: str) -> str:
    """String: a producer's idempotency key -> the batch id it created."""
    return f"{PREFIX}idem:{key}"


def active() -> str:
    """Sorted set: chunk ids not yet final, scored by their last change (the sweep's index)."""
    return f"{PREFIX}active"


def leases() -> str:
    """Sorted set: chunk ids a worker holds (sending, or waiting in a rate-limit line),
    scored by when the hold runs out; a worker republishes a chunk whose hold ran out."""
    return f"{PREFIX}leases"


def unclaimed(queue: str) -> str:
    """Sorted set: chunk ids whose task was published to ``queue`` and that no worker has
    claimed yet, scored by when (a message taken off the queue by a worker that died
    before claiming it shows here, older than anything still on the queue)."""
    return _fill("unclaimed", queue)


def dead_letters() -> str:
    """Sorted set: dead chunk ids scored by the time they died."""
    return f"{PREFIX}dead"


def failed_letters() -> str:
    """Sorted set: failed chunk ids scored by the time they failed (for replays by error)."""
    return f"{PREFIX}failed"


def parked() -> str:
    """Sorted set: task calls waiting for their time (retries, ``send_at``, holds), by due time."""
    return _fill("parked")


def suppressed() -> str:
    """Set: addresses producers refuse (hard bounces, spam complaints, synced suppressions)."""
    return f"{PREFIX}suppressed"


def suppressed_erased() -> str:
    """Set: keyed hashes of suppressed addresses that were erased (``outbox.erase``): still
    refused, no longer readable."""
    return f"{PREFIX}suppressed:erased"


def suppressed_lifted() -> str:
    """Sorted set: keyed hashes of addresses whose suppression was lifted (``outbox
    suppressions remove``), scored by when, so a sync that read SMTP2GO's list before
    then leaves them out."""
    return f"{PREFIX}suppressed:lifted"


def erased() -> str:
    """Hash: keyed hash of every address or number erased (``outbox.erase``) to what
    became of it at SMTP2GO, so a sync never stores it readable again."""
    return f"{PREFIX}erased"


def erase_key() -> str:
    """String: the random key of those hashes, made once per installation."""
    return f"{PREFIX}erase:key"


def limit_window(bucket: str, index: int, part: str) -> str:
    """Sorted set: the requests a rate-limit window counts (``part`` ``busy``: in flight,
    scored by when a dead claimant's hold ends; ``answered``: scored by when they leave)."""
    return f"{PREFIX}limit:{bucket}:{index}:{part}"


def limit_line(bucket: str) -> str:
    """Unused since lanes (kept in the limit block's place; a rolling upgrade's old workers
    may still read it, and find it empty)."""
    return f"{PREFIX}limit:{bucket}:line"


def lane(bucket: str, lane: str) -> str:
    """Sorted set: the tenants with chunks waiting in a lane of a bucket, scored by the
    start tag of each one's oldest chunk (start-time fair queueing)."""
    return _fill("lane", bucket, lane)


def lane_tenant(bucket: str, lane: str, tenant: str) -> str:
    """List: one tenant's chunks waiting in a lane, oldest first."""
    return _fill("lane_tenant", bucket, lane, tenant)


def lane_meta(bucket: str, lane: str) -> str:
    """Hash: a lane's virtual time (``v``) and each tenant's last finish tag (``f:<t>``)."""
    return _fill("lane_meta", bucket, lane)


def staged() -> str:
    """Sorted set: batches being written in pages, by when they began (beat discards one
    whose producer died before committing it)."""
    return _fill("staged")


def pace(bucket: str) -> str:
    """String: the latest slot time granted in a bucket (slots are granted P/N apart)."""
    return _fill("pace", bucket)


def tenant_window(bucket: str, tenant: str, index: int, part: str) -> str:
    """Sorted set: a capped tenant's own window (``OUTBOX_TENANT_LIMITS``), as
    :func:`limit_window`."""
    return _fill("tenant_window", bucket, tenant, str(index), part)


def limit_granted(bucket: str) -> str:
    """Sorted set: slots granted for a time still to come, by that time (a cool-down moves them)."""
    return f"{PREFIX}limit:{bucket}:granted"


def wake(bucket: str, chunk_id: str) -> str:
    """List: messages to the sender of a chunk waiting for its slot (its grant, or a hold)."""
    return _fill("wake", bucket, chunk_id)


def cooldown() -> str:
    """String: until when (Redis clock) nobody calls the API: a 429 times the IP out."""
    return f"{PREFIX}cooldown"


def account_hold() -> str:
    """String: why sending is held for the whole account (a rejected key; JSON)."""
    return f"{PREFIX}hold"


def permissions() -> str:
    """Hash: endpoint path -> until when (epoch seconds) the key is known to be refused it
    (``ENDPOINT_PERMISSION_DENIED``); ``_checked`` -> when ``api_keys/permissions`` was last
    read. Nobody calls a refused endpoint again before its time."""
    return f"{PREFIX}permissions"


def quota() -> str:
    """String: the account's monthly quota as last read from ``stats/email_cycle`` (JSON)."""
    return f"{PREFIX}quota"


def quota_left() -> str:
    """String: emails the account may still send this cycle, as ``stats/email_cycle``
    last said, less what was claimed since; expires when the cycle ends. Absent: no
    quota is known, nothing waits for one."""
    return _fill("quota_left")


def callbacks_due() -> str:
    """Sorted set: finished batches whose completion callback is still to be published, by
    when they finished (a worker that died before publishing leaves it for the sweep)."""
    return _fill("callbacks_due")


def tally() -> str:
    """Hash: fleet-wide counts the metrics read: ``canceled`` (chunks canceled, ever: a
    counter) and ``paused`` (chunks paused now). Kept without a TTL, as a counter is."""
    return _fill("tally")


def throttled() -> str:
    """Sorted set: chunks waiting for the monthly quota (state ``throttled``), by when."""
    return _fill("throttled")


def turn(job: str) -> str:
    """String with a TTL: whose turn a fleet-wide periodic job (a probe, a log line) is."""
    return f"{PREFIX}turn:{job}"


def reconcile_found() -> str:
    """Hash: chunk id -> ``email_id`` found by ``activity/search`` scans."""
    return f"{PREFIX}reconcile:found"


def relay_wake() -> str:
    """List: a token per wake-up of a sleeping relay (something was parked for sooner
    than anything it waits for)."""
    return _fill("relay_wake")


def reconcile_scanning() -> str:
    """Lock: held by the one worker scanning ``activity/search`` (the others wait for it)."""
    return f"{PREFIX}reconcile:scanning"


def reconcile_scanned(edge: str) -> str:
    """String: the Redis time a scan started (``at``) or the window it read from (``from``)."""
    return f"{PREFIX}reconcile:scanned_{edge}"


def stats_snapshot() -> str:
    """String: the latest ``stats/email_summary`` answer with the time it was taken."""
    return f"{PREFIX}stats:email_summary"


def webhook_unmatched() -> str:
    """List: webhook events naming no message of ours (newest first, bounded)."""
    return f"{PREFIX}webhooks:unmatched"
