"""One typed settings object, read from the environment (and ``.env``) at the edges only.

The Celery config, the command line and the webhook app build a :class:`Settings`;
the client, limiter and stores take plain constructor arguments, so nothing deep in
the code reads the environment and tests never need to patch it.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outbox.errors import ConfigurationError

__all__ = ["REGION_URLS", "MissingAPIKeyError", "Rate", "Settings", "get_settings", "parse_rate"]

#: Base URL of each SMTP2GO region.
REGION_URLS: dict[str, str] = {
    "global": "https://api.smtp2go.com/v3",
    "us": "https://us-api.smtp2go.com/v3",
    "eu": "https://eu-api.smtp2go.com/v3",
    "au": "https://au-api.smtp2go.com/v3",
}

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}


class MissingAPIKeyError(ConfigurationError):
    """Raised when a real send needs ``SMTP2GO_API_KEY`` and none is configured."""


class Rate:
    """A request rate such as ``10/s`` or ``600/m``: ``count`` requests per ``period`` seconds."""

    __slots__ = ("count", "period")

    def __init__(self, count: float, period: float) -> None:
        if count <= 0 or period <= 0:
            raise ValueError("a rate needs a positive count and period")
        self.count = count
        self.period = period

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def interval(self) -> float:
        """Seconds between two requests at this rate (the GCRA emission interval)."""
        return self.period / self.count

    def __repr__(self) -> str:
        return f"Rate({self.count:g}/{self.period:g}s)"

    def __str__(self) -> str:
        return f"{self.count:g}/{self.period:g}s" if self.period != 1 else f"{self.count:g}/s"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rate) and (self.count, self.period) == (other.count, other.period)

    def __hash__(self) -> int:
        return hash((self.count, self.period))


def parse_rate(text: str) -> Rate:
    """Parse ``"10/s"``, ``"600/m"``, ``"5/10s"`` or ``"1000/hour"`` into a :class:`Rate`."""
    match = _RATE_RE.match(text)
    if not match:
        raise ValueError(f"not a rate: {text!r} (expected e.g. '10/s', '600/m', '5/10s')")
    count, multiplier, unit = match.groups()
    return Rate(float(count), float(multiplier or 1) * _UNIT_SECONDS[unit])


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every knob of outbox, from the environment; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    smtp2go_api_key: SecretStr | None = Field(default=None, validation_alias="SMTP2GO_API_KEY")
    smtp2go_region: Literal["global", "us", "eu", "au"] = Field(
        default="global", validation_alias="SMTP2GO_REGION"
    )
    smtp2go_base_url: str | None = Field(default=None, validation_alias="SMTP2GO_BASE_URL")
    #: Allow a plain-http base URL that is not loopback (never wanted outside a lab).
    smtp2go_allow_insecure: bool = Field(default=False, validation_alias="SMTP2GO_ALLOW_INSECURE")
    #: Seconds to wait for SMTP2GO to answer one request.
    smtp2go_timeout: float = Field(default=30.0, validation_alias="SMTP2GO_TIMEOUT")

    celery_broker_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias="CELERY_BROKER_URL"
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/1", validation_alias="OUTBOX_REDIS_URL")
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="OUTBOX_WEBHOOK_SECRET")

    #: Shared by every worker for the send endpoints. SMTP2GO sets no fixed limit;
    #: 10/s keeps a new account clear of the IP timeout that bursts provoke.
    rate_limit: str = Field(default="10/s", validation_alias="OUTBOX_RATE_LIMIT")
    #: Spacing added to the shared limit so network jitter does not push two requests
    #: into one period at the API (0.02 = 2 % under ``OUTBOX_RATE_LIMIT``).
    rate_margin: float = Field(default=0.02, ge=0, lt=0.5, validation_alias="OUTBOX_RATE_MARGIN")
    #: The API's documented limit on activity/search.
    activity_rate_limit: str = Field(default="60/m", validation_alias="OUTBOX_ACTIVITY_RATE_LIMIT")
    #: Cool-down shared by all workers after a 429 without Retry-After (the API's
    #: IP timeout lasts at least a minute).
    cooldown_seconds: float = Field(default=60.0, validation_alias="OUTBOX_COOLDOWN_SECONDS")
    #: Share a 429's cool-down with every worker (off only to measure what it saves:
    #: ``bench/storm.py``); off, each task waits out its own ``Retry-After`` alone.
    shared_cooldown: bool = Field(default=True, validation_alias="OUTBOX_SHARED_COOLDOWN")
    #: Attempts at the API per chunk (the first one included) before it goes dead.
    max_attempts: int = Field(default=8, ge=1, validation_alias="OUTBOX_MAX_ATTEMPTS")
    retry_base: float = Field(default=1.0, gt=0, validation_alias="OUTBOX_RETRY_BASE")
    retry_cap: float = Field(default=300.0, gt=0, validation_alias="OUTBOX_RETRY_CAP")
    #: How long records, dead letters and idempotency keys are kept.
    retention_seconds: int = Field(default=7 * 86400, ge=60, validation_alias="OUTBOX_RETENTION")
    #: What a redelivered chunk whose first attempt is ambiguous does when the
    #: provider cannot tell whether it was accepted: ``resend`` or ``hold``.
    ambiguous_policy: Literal["resend", "hold"] = Field(
        default="resend", validation_alias="OUTBOX_AMBIGUOUS_POLICY"
    )
    #: A chunk ``sending`` for longer than this is presumed orphaned by a dead worker.
    stuck_after_seconds: int = Field(default=900, ge=10, validation_alias="OUTBOX_STUCK_AFTER")
    #: Add hard bounces and spam complaints from webhooks to the local suppression set.
    suppress_on_bounce: bool = Field(default=True, validation_alias="OUTBOX_SUPPRESS_ON_BOUNCE")

    #: Seconds before the Redis broker hands an unacknowledged task (a dead worker's)
    #: to another worker. Keep it above the longest task (the client timeout plus a
    #: short rate-limit wait); longer waits are parked in Redis, never held by a worker.
    visibility_timeout: int = Field(default=60, ge=5, validation_alias="OUTBOX_VISIBILITY_TIMEOUT")
    #: Batches with more chunks than this go to the lower-priority ``bulk`` queue.
    bulk_threshold: int = Field(default=10, ge=1, validation_alias="OUTBOX_BULK_THRESHOLD")

    stats_interval: float = Field(default=3600.0, validation_alias="OUTBOX_STATS_INTERVAL")
    suppression_sync_interval: float = Field(
        default=3600.0, validation_alias="OUTBOX_SUPPRESSION_SYNC_INTERVAL"
    )
    sweep_interval: float = Field(default=300.0, validation_alias="OUTBOX_SWEEP_INTERVAL")
    rematch_interval: float = Field(default=300.0, validation_alias="OUTBOX_REMATCH_INTERVAL")
    expire_interval: float = Field(default=86400.0, validation_alias="OUTBOX_EXPIRE_INTERVAL")

    @field_validator("rate_limit", "activity_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @property
    def base_url(self) -> str:
        url = (self.smtp2go_base_url or REGION_URLS[self.smtp2go_region]).strip().rstrip("/")
        # The scheme compared as a URL parser reads it: "HTTP://" is plain http too.
        plain = urlsplit(url).scheme.lower() == "http"
        if plain and not _is_loopback(url) and not self.smtp2go_allow_insecure:
            raise ValueError(
                f"SMTP2GO_BASE_URL={url!r} is plain http to a non-loopback host; the API key "
                "would cross the network in clear text. Use https, or set "
                "SMTP2GO_ALLOW_INSECURE=1 if you really mean it."
            )
        return url

    @property
    def park_after(self) -> float:
        """Waits longer than this go to Redis's parked set instead of a broker countdown."""
        return self.visibility_timeout / 2

    @property
    def send_rate(self) -> Rate:
        return parse_rate(self.rate_limit)

    @property
    def activity_rate(self) -> Rate:
        return parse_rate(self.activity_rate_limit)

    def require_api_key(self) -> str:
        """The key for a real request; a clear error when it is missing."""
        if self.smtp2go_api_key is None or not self.smtp2go_api_key.get_secret_value():
            raise MissingAPIKeyError(
                "SMTP2GO_API_KEY is not set: the worker needs it to call SMTP2GO "
                "(set it in the worker's environment or .env; producers never need it)"
            )
        return self.smtp2go_api_key.get_secret_value()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
