"""What the sandbox counted of the demo's sends, read by the live bars and the summary
alike (so neither imports the other)."""

from __future__ import annotations

from typing import Any

__all__ = ["SEND_ENDPOINTS", "sandbox_stats", "send_counters"]

#: The sandbox endpoints that send (the ones the rate limit and faults are about).
SEND_ENDPOINTS = ("email/send", "email/mime", "sms/send")


def sandbox_stats(client: Any) -> dict[str, Any]:
    response = client.get("/_sandbox/stats")
    response.raise_for_status()
    return dict(response.json())


def send_counters(stats: dict[str, Any]) -> tuple[int, int, int]:
    """``(requests, 429s, injected 5xx)`` over the send endpoints."""
    by = stats.get("by_endpoint", {})
    rows = [by.get(path, {}) for path in SEND_ENDPOINTS]
    return (
        sum(int(r.get("requests", 0)) for r in rows),
        sum(int(r.get("rate_limited", 0)) for r in rows),
        sum(int(r.get("injected_failures", 0)) for r in rows),
    )
