"""Every setting ``POST /_sandbox/config`` changes at run time, in one table.

Each :class:`Knob` knows how to check a value, apply it, and show it in ``GET
/_sandbox/config``; the table in ``docs/sandbox.md`` is generated from this list
(:func:`markdown_table`, checked by a unit test), so the two cannot drift apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outbox.sandbox.config import (
    KEY_STATUSES,
    MAX_SECONDS,
    PLAN_CEILING,
    parse_activity_rate,
    parse_rate,
)
from outbox.sandbox.endpoints import ENDPOINTS, endpoint_names
from outbox.sandbox.state import SandboxState

__all__ = ["KNOBS", "ConfigError", "Knob", "apply_config", "config_view", "markdown_table"]


class ConfigError(ValueError):
    """A value ``POST /_sandbox/config`` refuses, naming its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Knob:
    """One run-time setting."""

    name: str
    #: What the value is, for the docs.
    kind: str
    help: str
    parse: Callable[[str, Any], Any]
    apply: Callable[[SandboxState, Any], None]
    view: Callable[[SandboxState], Any]
    #: The command-line option that sets its start value, if any.
    option: str | None = None


def _number(low: float = 0.0, high: float = math.inf) -> Callable[[str, Any], float]:
    def parse(field: str, value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ConfigError(field, f"{field} must be a number from {low:g} to {high:g}")
        return float(value)

    return parse


def _count(low: int = 0, high: int = 10**9) -> Callable[[str, Any], int]:
    def parse(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(field, f"{field} must be a whole number from {low} to {high}")
        return value

    return parse


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"{field} must be true or false")
    return value


def _rate(parse: Callable[[Any], Any]) -> Callable[[str, Any], Any]:
    def check(field: str, value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(field, str(exc)) from None

    return check


def _endpoints(field: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not set(value) <= set(ENDPOINTS):
        raise ConfigError(field, f"{field} must be null or a list of endpoints")
    return frozenset(value)


def _domains(field: str, value: Any) -> list[str] | None:
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(d, str) for d in value)
    ):
        raise ConfigError(field, f"{field} must be null or a list of domains")
    return value


def _permissions(field: str, value: Any) -> frozenset[str] | None:
    try:
        return endpoint_names(value)
    except ValueError as exc:
        raise ConfigError(field, f"{field} {exc}") from None


def _key_status(field: str, value: Any) -> str:
    if value not in KEY_STATUSES:
        raise ConfigError(field, f"{field} must be one of {', '.join(KEY_STATUSES)}")
    return str(value)


def _plan(field: str, value: Any) -> str:
    if value not in PLAN_CEILING:
        raise ConfigError(field, f"{field} must be one of {', '.join(PLAN_CEILING)}")
    return str(value)


def _domain(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, f"{field} must be a domain")
    return value.strip().lower()


def _set(name: str) -> Callable[[SandboxState, Any], None]:
    return lambda state, value: setattr(state, name, value)


def _set_fault(name: str) -> Callable[[SandboxState, Any], None]:
    return lambda state, value: setattr(state.faults, name, value)


def _storm(state: SandboxState, seconds: float) -> None:
    state.faults.storm_until = time.monotonic() + seconds if seconds else 0.0


def _reseed(state: SandboxState, seed: int) -> None:
    state.seed = seed
    state.rng.seed(seed)


KNOBS: tuple[Knob, ...] = (
    Knob(
        "rate",
        "rate or null",
        "The account's limit over every `/v3` request from all clients (`10/s`, `600/m`, "
        "`5/10s`); the request over it times its client out. `null`/`0`: no limit.",
        _rate(parse_rate),
        lambda state, rate: state.set_rate(rate),
        lambda state: str(state.limiter) if state.limiter else None,
        "--rate",
    ),
    Knob(
        "activity_rate",
        "rate or null",
        "`activity/search`'s own limit (a bare number is per minute); going over it times "
        "the client out of that endpoint only.",
        _rate(parse_activity_rate),
        lambda state, rate: state.set_activity_rate(rate),
        lambda state: str(state.activity_limiter) if state.activity_limiter else None,
        "--activity-rate",
    ),
    Knob(
        "key_rate",
        "rate or null",
        "The key's own limit on sends (`100/h`): over it a send is answered 429, \"API key "
        'ratelimit exceeded", and the client is not timed out (assumed). `null`: none, a '
        "key's default.",
        _rate(parse_rate),
        lambda state, rate: state.set_key_rate(rate),
        lambda state: str(state.key_limiter) if state.key_limiter else None,
        "--key-rate",
    ),
    Knob(
        "key_status",
        "allowed/blocked/sandbox",
        "`sandbox`: sends are accepted and every recipient rejected, nothing delivered; "
        "`blocked`: sends are refused (the answer's shape is assumed).",
        _key_status,
        _set("key_status"),
        lambda state: state.key_status,
        "--key-status",
    ),
    Knob(
        "penalty",
        f"seconds, 0 to {MAX_SECONDS:g}",
        "How long a client's IP is timed out (every request answered 429) after going over "
        "`rate`, `activity_rate` or `error_limit`. 0: only the requests over the limit are "
        "refused.",
        _number(high=MAX_SECONDS),
        _set("penalty"),
        lambda state: state.penalty,
        "--penalty",
    ),
    Knob(
        "error_limit",
        "rate or null",
        "How many 4xx answers other than 429 one IP may get in the window (`20/m`) before "
        "it is timed out. `null`: errors never time a client out.",
        _rate(parse_rate),
        lambda state, rate: state.set_error_limit(rate),
        lambda state: str(state.error_windows) if state.error_windows else None,
        "--error-limit",
    ),
    Knob(
        "rate_headers",
        "true/false",
        "Send `X-RateLimit-Limit/Remaining/Reset` on every answer (when `rate` is set) and "
        "`Retry-After` on every 429. The real service promises neither.",
        _flag,
        _set("rate_headers"),
        lambda state: state.rate_headers,
        "--rate-headers",
    ),
    Knob(
        "fastaccept",
        "true/false",
        "Answer every `email/send`, `email/mime` and `email/batch` item as under "
        "`fastaccept: true`: only its `email_id`, a refusal (an unverified sender, "
        "`soft_fail_next`) arriving later as a `reject` event per recipient. The OpenAPI "
        'says it "will soon become the default".',
        _flag,
        _set("fastaccept"),
        lambda state: state.fastaccept,
        "--fastaccept",
    ),
    Knob(
        "latency_ms",
        "milliseconds ≥ 0",
        "Added to every answer not refused by a limit, after the request is counted.",
        _number(),
        lambda state, ms: setattr(state, "latency", ms / 1000.0),
        lambda state: state.latency * 1000.0,
        "--latency-ms",
    ),
    Knob(
        "latency_jitter_ms",
        "milliseconds ≥ 0",
        "A random 0..J ms wait *before* a request is counted against the limits: network "
        "delay on the way in, so arrivals bunch as on a busy network.",
        _number(),
        lambda state, ms: setattr(state, "jitter", ms / 1000.0),
        lambda state: state.jitter * 1000.0,
        "--latency-jitter-ms",
    ),
    Knob(
        "fail_rate",
        "0 to 1",
        "Share of requests answered 500, 502 (an HTML page, as a proxy sends) or 503.",
        _number(high=1.0),
        _set_fault("fail_rate"),
        lambda state: state.faults.fail_rate,
        "--fail-rate",
    ),
    Knob(
        "fail_next",
        "count",
        "The next N requests are answered `fail_status`.",
        _count(),
        _set_fault("fail_next"),
        lambda state: state.faults.fail_next,
    ),
    Knob(
        "fail_status",
        "400 to 599",
        "The status of `fail_next` answers (default 503), in the API's error shape.",
        _count(400, 599),
        _set_fault("fail_status"),
        lambda state: state.faults.fail_status,
    ),
    Knob(
        "fail_endpoints",
        "list of endpoints or null",
        'Restricts `fail_next` and `fail_rate` to these paths (`["email/send"]`).',
        _endpoints,
        _set_fault("fail_endpoints"),
        lambda state: sorted(state.faults.fail_endpoints) if state.faults.fail_endpoints else None,
    ),
    Knob(
        "soft_fail_next",
        "count",
        "The next N sends (`email/send`, `email/mime`, `sms/send`) answer 200 with "
        "`succeeded: 0, failed: 1` and a message in `failures` (`sms/send`: every message "
        "`failed`), and deliver nothing.",
        _count(),
        _set_fault("soft_fail_next"),
        lambda state: state.faults.soft_fail_next,
    ),
    Knob(
        "hang_next",
        "count",
        "The next N sends are accepted and recorded, but answered only after "
        "`hang_seconds`: a client timeout with an unknown outcome.",
        _count(),
        _set_fault("hang_next"),
        lambda state: state.faults.hang_next,
    ),
    Knob(
        "hang_seconds",
        f"seconds, 0 to {MAX_SECONDS:g}",
        "How long a `hang_next` answer is held back.",
        _number(high=MAX_SECONDS),
        _set_fault("hang_seconds"),
        lambda state: state.faults.hang_seconds,
        "--hang-seconds",
    ),
    Knob(
        "storm_seconds",
        f"seconds, 0 to {MAX_SECONDS:g}",
        "Every `/v3` request is answered 429 for this long, from now (reads back as the "
        "time left).",
        _number(high=MAX_SECONDS),
        _storm,
        lambda state: max(0.0, state.faults.storm_until - time.monotonic()),
    ),
    Knob(
        "verified_domains",
        "list of domains or null",
        "Sender domains the account has verified; a send from another answers 200 with "
        "`failed: 1`. `null`: any sender.",
        _domains,
        lambda state, domains: state.set_verified_domains(domains),
        lambda state: (
            sorted(state.verified_domains) if state.verified_domains is not None else None
        ),
        "--verified-domains",
    ),
    Knob(
        "key_permissions",
        "list of endpoints or null",
        'The endpoints the key may call (`["/email/send"]` is a key SMTP2GO creates with '
        "the default permissions); others answer 400 `ENDPOINT_PERMISSION_DENIED`. "
        "`null`: every endpoint.",
        _permissions,
        _set("key_permissions"),
        lambda state: (
            sorted(f"/{e}" for e in state.key_permissions)
            if state.key_permissions is not None
            else None
        ),
        "--key-permissions",
    ),
    Knob(
        "bounce_domain",
        "domain",
        "Recipients at this domain hard-bounce instead of being delivered.",
        _domain,
        _set("bounce_domain"),
        lambda state: state.bounce_domain,
        "--bounce-domain",
    ),
    Knob(
        "suppress_bounces",
        "true/false",
        "A hard bounce adds the address to the suppression list, as the real service does.",
        _flag,
        _set("suppress_bounces"),
        lambda state: state.suppress_bounces,
        "--suppress-bounces",
    ),
    Knob(
        "cycle_max",
        "count",
        "The monthly allowance `stats/email_cycle` reports (recipients).",
        _count(),
        _set("cycle_max"),
        lambda state: state.cycle_max,
        "--cycle-max",
    ),
    Knob(
        "plan",
        "free/paid",
        "The account's plan: sends past 100 % of `cycle_max` (free) or 300 % (paid, "
        "overage) are refused.",
        _plan,
        _set("plan"),
        lambda state: state.plan,
        "--plan",
    ),
    Knob(
        "webhook_retries",
        "0 to 100",
        "Extra attempts at a webhook call the receiver failed or timed out.",
        _count(high=100),
        _set("webhook_retries"),
        lambda state: state.webhook_retries,
        "--webhook-retries",
    ),
    Knob(
        "webhook_timeout",
        "seconds, 0 to 600",
        "How long to wait for a webhook receiver (the real service: 10 s).",
        _number(high=600.0),
        _set("webhook_timeout"),
        lambda state: state.webhook_timeout,
        "--webhook-timeout",
    ),
    Knob(
        "webhook_backoff",
        "seconds, 0 to 600",
        "First delay before retrying a webhook call; doubles per attempt, up to 100 times "
        "the first (60 s: 35 retries span about 49 h, as the service's 48 h). Small values "
        "compress the schedule for tests.",
        _number(high=600.0),
        _set("webhook_backoff"),
        lambda state: state.webhook_backoff,
        "--webhook-backoff",
    ),
    Knob(
        "seed",
        "integer",
        "Re-seeds the ids and random faults, for reproducible runs.",
        _count(high=2**63),
        _reseed,
        lambda state: state.seed,
        "--seed",
    ),
)

_BY_NAME = {knob.name: knob for knob in KNOBS}


def config_view(state: SandboxState) -> dict[str, Any]:
    """``GET /_sandbox/config``: every knob, and whether the key is fixed."""
    view = {knob.name: knob.view(state) for knob in KNOBS}
    view["api_key_fixed"] = state.api_key is not None
    return view


def apply_config(state: SandboxState, body: dict[str, Any]) -> None:
    """Check every field first, so a request with one bad field changes nothing."""
    values = []
    for field, value in body.items():
        knob = _BY_NAME.get(field)
        if knob is None:
            raise ConfigError(field, f"unknown setting {field!r}")
        values.append((knob, knob.parse(field, value)))
    for knob, parsed in values:
        knob.apply(state, parsed)


def markdown_table() -> str:
    """The table of ``docs/sandbox.md``: every field, what it takes, its option, its use."""
    lines = ["| field | value | start value from | what it does |", "|---|---|---|---|"]
    for knob in KNOBS:
        option = f"`{knob.option}`" if knob.option else "—"
        lines.append(f"| `{knob.name}` | {knob.kind} | {option} | {knob.help} |")
    return "\n".join(lines)
