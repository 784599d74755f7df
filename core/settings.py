"""One typed settings object, read from the environment (and ``.env``) at the edges only.

The Celery config, the command line and the webhook app build a :class:`Settings`;
the client, the limits and the stores take plain constructor arguments, so nothing deep
in the code reads the environment and tests never need to patch it. Each field's
``description`` is the one description of the setting: the README's configuration table
is generated from them (``python -m support.docblocks README.md``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outbox.core.errors import API_KEY_PATTERN, ConfigurationError
from outbox.core.windows import (
    Window,
    parse_tenant_limits,
    parse_tenant_weights,
    parse_windows,
)

__all__ = [
    "REGION_URLS",
    "MissingAPIKeyError",
    "Settings",
    "get_settings",
    "markdown_table",
    "settings_table",
]

#: Base URL of each SMTP2GO region.
REGION_URLS: dict[str, str] = {
    "global": "https://api.smtp2go.com/v3",
    "us": "https://us-api.smtp2go.com/v3",
    "eu": "https://eu-api.smtp2go.com/v3",
    "au": "https://au-api.smtp2go.com/v3",
}


class MissingAPIKeyError(ConfigurationError):
    """Raised when a real send needs ``SMTP2GO_API_KEY`` and none is configured."""


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The default pace as a share of P/N. Slots granted exactly P/N apart cannot catch up
#: after answers come back in a bunch (at 200/s: 0.89-0.90 of R used); at half of it the
#: first period's grants bunch and leave gaps that recur every period (a reset's p99
#: 254 ms). bench.lanes, 200/s: 0.8 gave 0.902 of R and a p99 of 102 ms.
PACE_SHARE = 0.8


class Settings(BaseSettings):
    """Every knob of outbox, from the environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    smtp2go_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="SMTP2GO_API_KEY",
        description=(
            "API key; read by workers only, never put in a task, a record or a log line. `api-` "
            "and 32 letters or digits."
        ),
    )
    smtp2go_region: Literal["global", "us", "eu", "au"] = Field(
        default="global",
        validation_alias="SMTP2GO_REGION",
        description="The account's region: `global`, `us`, `eu` or `au`.",
    )
    smtp2go_base_url: str | None = Field(
        default=None,
        validation_alias="SMTP2GO_BASE_URL",
        description=(
            "Overrides the region's URL (the sandbox: `http://127.0.0.1:8025/v3`); plain http "
            "only to loopback unless `SMTP2GO_ALLOW_INSECURE=1`."
        ),
    )
    smtp2go_allow_insecure: bool = Field(
        default=False,
        validation_alias="SMTP2GO_ALLOW_INSECURE",
        description=(
            "Allow a plain-http base URL that is not loopback (never wanted outside a lab)."
        ),
    )
    smtp2go_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias="SMTP2GO_TIMEOUT",
        description="Seconds to wait for SMTP2GO to answer one request.",
    )

    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias="CELERY_BROKER_URL",
        description="The broker: Redis (`redis://`) or RabbitMQ (`amqp://`).",
    )
    queue_type: Literal["classic", "quorum"] = Field(
        default="classic",
        validation_alias="OUTBOX_QUEUE_TYPE",
        description=(
            "RabbitMQ only: `quorum` declares replicated quorum queues, `classic` single-node "
            "ones (a queue keeps its type: switch on a fresh vhost)."
        ),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/1",
        validation_alias="OUTBOX_REDIS_URL",
        description=(
            "Records, rate limits, parked tasks and dead letters: `redis://`, `rediss://`, "
            "`redis+cluster://host:port` or `redis+sentinel://host:port/service/db`."
        ),
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="OUTBOX_WEBHOOK_SECRET",
        description=(
            "The webhook receiver's bearer token / basic-auth password; it refuses to start "
            "without one unless told `--insecure`."
        ),
    )

    rate_limit: str = Field(
        default="10/s",
        validation_alias="OUTBOX_RATE_LIMIT",
        description=(
            "The account's limit on the send endpoints, shared by every worker: one window or "
            "several (`10/s`, `10/s,500/m,20000/h`). Held exactly: set it to the limit itself."
        ),
    )
    activity_rate_limit: str = Field(
        default="60/m",
        validation_alias="OUTBOX_ACTIVITY_RATE_LIMIT",
        description="The shared limit for `activity/search` (the API documents 60 a minute).",
    )
    cooldown_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias="OUTBOX_COOLDOWN_SECONDS",
        description=(
            "How long every worker holds off after a 429 without `Retry-After`: the API times the"
            " client's IP out for at least a minute."
        ),
    )
    cooldown_cap: float = Field(
        default=900.0,
        gt=0,
        validation_alias="OUTBOX_COOLDOWN_CAP",
        description=(
            "Longest cool-down a server's hint may ask for; a longer `Retry-After` is capped."
        ),
    )
    account_reads_at_start: bool = Field(
        default=True,
        validation_alias="OUTBOX_ACCOUNT_READS_AT_START",
        description=(
            "When workers start (once per fleet start), read what the key may call "
            "(`api_keys/permissions`) and the monthly quota, rather than wait for beat's "
            "first interval. Two requests, each in a slot of the shared limit."
        ),
    )
    shared_cooldown: bool = Field(
        default=True,
        validation_alias="OUTBOX_SHARED_COOLDOWN",
        description=(
            "Share a 429's cool-down with every worker (off only to measure what it saves: "
            "`bench/storm.py`); off, each task waits out its own `Retry-After` alone."
        ),
    )
    hold_probe_interval: float = Field(
        default=30.0,
        gt=0,
        validation_alias="OUTBOX_HOLD_PROBE_INTERVAL",
        description="Seconds between checks of a rejected API key while sending is held.",
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        validation_alias="OUTBOX_MAX_ATTEMPTS",
        description="Attempts at the API per chunk (the first one included) before it goes dead.",
    )
    retry_base: float = Field(
        default=1.0,
        gt=0,
        validation_alias="OUTBOX_RETRY_BASE",
        description="Exponential backoff base, seconds (full jitter).",
    )
    retry_cap: float = Field(
        default=300.0,
        gt=0,
        validation_alias="OUTBOX_RETRY_CAP",
        description="Longest backoff between two attempts, seconds.",
    )
    retention_seconds: int = Field(
        default=7 * 86400,
        ge=60,
        validation_alias="OUTBOX_RETENTION",
        description="Seconds records, dead letters and idempotency keys are kept.",
    )
    ambiguous_policy: Literal["resend", "hold"] = Field(
        default="hold",
        validation_alias="OUTBOX_AMBIGUOUS_POLICY",
        description=(
            "When a crashed attempt's fate cannot be looked up (the key may not call "
            "`activity/search`, or the look-up fails): `hold` (a dead letter naming why, "
            "for an operator to replay: never sent twice) or `resend` (sent again: never "
            "lost, maybe twice)."
        ),
    )
    stuck_after_seconds: int = Field(
        default=900,
        ge=10,
        validation_alias="OUTBOX_STUCK_AFTER",
        description=(
            "A chunk unchanged this long is published again by the sweep (the last resort for a "
            "task message lost before any worker claimed it)."
        ),
    )
    suppress_on_bounce: bool = Field(
        default=True,
        validation_alias="OUTBOX_SUPPRESS_ON_BOUNCE",
        description=(
            "Add hard bounces and spam complaints from webhooks to the local suppression set."
        ),
    )
    bulk_threshold: int = Field(
        default=10,
        ge=1,
        validation_alias="OUTBOX_BULK_THRESHOLD",
        description=(
            "Batches with more chunks than this go to the `bulk` queue, published by one fan-out "
            "task from a worker."
        ),
    )
    sharing: Literal["lanes", "fifo"] = Field(
        default="lanes",
        validation_alias="OUTBOX_SHARING",
        description=(
            "`lanes`: transactional chunks go before bulk ones and tenants share by weight; "
            "`fifo`: one first-come line for everything (the behaviour before lanes)."
        ),
    )
    bulk_lookahead: float | None = Field(
        default=None,
        gt=0,
        le=5,
        validation_alias="OUTBOX_BULK_LOOKAHEAD",
        description=(
            "How far ahead, in seconds, a bulk chunk takes a slot; one further off waits in "
            "Redis without a worker thread (default: P/N of the shortest window, kept within "
            "0.02-1 s)."
        ),
    )
    pace_seconds: float | None = Field(
        default=None,
        ge=0,
        le=5,
        validation_alias="OUTBOX_PACE",
        description=(
            "Slots are granted at least this far apart, so a chunk that comes later finds "
            "one near (default: 0.8 of P/N of the shortest window; 0: off)."
        ),
    )
    tenant_weights: str = Field(
        default="",
        validation_alias="OUTBOX_TENANT_WEIGHTS",
        description="Tenants' shares within a lane, `acme=3,globex=1` (default 1 each).",
    )
    tenant_limits: str = Field(
        default="",
        validation_alias="OUTBOX_TENANT_LIMITS",
        description=(
            "Tenants' own limits below the account's, `acme=5/s,globex=100/m` (`;` between "
            "several windows of one tenant)."
        ),
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        validation_alias="OUTBOX_METRICS_PORT",
        description=(
            "Port on which a worker serves Prometheus metrics at `/metrics` (unset: off; needs "
            "the `metrics` extra). One port per worker instance: a prefork pool's children are "
            "added up by the main process, which alone listens."
        ),
    )
    metrics_address: str = Field(
        default="127.0.0.1",
        validation_alias="OUTBOX_METRICS_ADDRESS",
        description=(
            "Address the worker's metrics are served on; `0.0.0.0` (or `::`) for a Prometheus on "
            "another host or container. The page holds counts only (no email address, id or "
            "secret)."
        ),
    )

    stats_interval: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="OUTBOX_STATS_INTERVAL",
        description="Seconds between two `stats/email_summary` snapshots (beat).",
    )
    suppression_sync_interval: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="OUTBOX_SUPPRESSION_SYNC_INTERVAL",
        description="Seconds between two pulls of the account's suppression list (beat).",
    )
    quota_interval: float = Field(
        default=300.0,
        gt=0,
        validation_alias="OUTBOX_QUOTA_INTERVAL",
        description="Seconds between two reads of the monthly quota, `stats/email_cycle` (beat).",
    )
    quota_plan: Literal["free", "paid"] = Field(
        default="free",
        validation_alias="OUTBOX_QUOTA_PLAN",
        description=(
            "What the account's plan lets it send in a month: `free` holds emails "
            "`throttled` at 100 % of the allowance (where a free plan is refused and a paid "
            "one starts paying overage), `paid` goes on to 300 % (where every plan is "
            'refused). SMTP2GO support, "Quota Usage Notifications".'
        ),
    )
    sweep_interval: float = Field(
        default=300.0,
        gt=0,
        validation_alias="OUTBOX_SWEEP_INTERVAL",
        description="Seconds between two stuck-chunk sweeps (beat).",
    )
    rematch_interval: float = Field(
        default=300.0,
        gt=0,
        validation_alias="OUTBOX_REMATCH_INTERVAL",
        description=(
            "Seconds between two passes over webhook events that found no message yet (beat)."
        ),
    )
    expire_interval: float = Field(
        default=86400.0,
        gt=0,
        validation_alias="OUTBOX_EXPIRE_INTERVAL",
        description="Seconds between two clean-ups of index entries whose records expired (beat).",
    )

    @field_validator("rate_limit", "activity_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_windows(value)
        return value

    @property
    def base_url(self) -> str:
        url = (self.smtp2go_base_url or REGION_URLS[self.smtp2go_region]).strip().rstrip("/")
        # The scheme compared as a URL parser reads it: "HTTP://" is plain http too.
        plain = urlsplit(url).scheme.lower() == "http"
        if plain and not _is_loopback(url) and not self.smtp2go_allow_insecure:
            raise ConfigurationError(
                f"SMTP2GO_BASE_URL={url!r} is plain http to a non-loopback host; the API key "
                "would cross the network in clear text. Use https, or set "
                "SMTP2GO_ALLOW_INSECURE=1 if you really mean it."
            )
        return url

    @field_validator("tenant_weights")
    @classmethod
    def _valid_weights(cls, value: str) -> str:
        parse_tenant_weights(value)
        return value

    @field_validator("tenant_limits")
    @classmethod
    def _valid_tenant_limits(cls, value: str) -> str:
        parse_tenant_limits(value)
        return value

    @property
    def pace(self) -> float:
        """Slots are granted at least this far apart: P/N of the shortest window."""
        if self.sharing == "fifo":
            return 0.0
        if self.pace_seconds is not None:
            return self.pace_seconds
        return PACE_SHARE * self.shortest_interval

    @property
    def lookahead(self) -> float:
        if self.sharing == "fifo":
            return 0.0
        if self.bulk_lookahead is not None:
            return self.bulk_lookahead
        return min(1.0, max(0.02, self.shortest_interval))

    @property
    def shortest_interval(self) -> float:
        """P/N of the window that allows requests closest together."""
        return min(w.period / w.count for w in self.send_windows)

    @property
    def send_windows(self) -> tuple[Window, ...]:
        return parse_windows(self.rate_limit)

    @property
    def activity_windows(self) -> tuple[Window, ...]:
        return parse_windows(self.activity_rate_limit)

    @property
    def lease(self) -> float:
        """How long a claim holds its chunk: the client timeout and a margin. A claim found
        expired means its worker died mid-request: the attempt's fate is unknown."""
        return self.smtp2go_timeout + 10.0

    @property
    def line_wait(self) -> float:
        """Longest a sender waits in a rate-limit line before it parks its task instead:
        long enough for a window's period twice over (a minute's limit fills in bursts)."""
        longest = max(w.period for w in self.send_windows)
        return min(600.0, max(60.0, 2 * longest))

    def require_api_key(self) -> str:
        """The key for a real request; a clear error when it is missing or malformed."""
        if self.smtp2go_api_key is None or not self.smtp2go_api_key.get_secret_value():
            raise MissingAPIKeyError(
                "SMTP2GO_API_KEY is not set: the worker needs it to call SMTP2GO "
                "(set it in the worker's environment or .env; producers never need it)"
            )
        key = self.smtp2go_api_key.get_secret_value()
        if not API_KEY_PATTERN.fullmatch(key.strip()):
            raise ConfigurationError(
                "SMTP2GO_API_KEY is not an SMTP2GO API key: it must be 'api-' followed by "
                "32 letters or digits (copy it again from Settings > API Keys)"
            )
        return key.strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def settings_table() -> list[tuple[str, str, str]]:
    """``(variable, default, meaning)`` for every setting, from the fields' descriptions."""
    rows = []
    for info in Settings.model_fields.values():
        default: Any = info.default
        if default is None:
            shown = "unset"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        else:
            shown = f"`{default}`"
        rows.append((f"`{info.validation_alias}`", shown, info.description or ""))
    return rows


def markdown_table() -> str:
    """The README's configuration table (``python -m support.docblocks README.md``)."""
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    lines += [f"| {name} | {default} | {meaning} |" for name, default, meaning in settings_table()]
    return "\n".join(lines)
