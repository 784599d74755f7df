"""``activity/search`` and ``stats/*`` computed from what the sandbox accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import email, field_error, ok

pytestmark = pytest.mark.integration


@pytest.fixture
def sent(api: httpx.Client) -> list[str]:
    """Three sends: a plain one, one with a hard bounce, one with a suppressed recipient."""
    ok(api.post("/suppression/add", json={"email_address": "gone@example.org"}))
    bodies = [
        email(subject="Order 1", custom_headers=[{"header": "X-Outbox-Id", "value": "o-1"}]),
        email(subject="Order 2", to=["ann@example.org", "bad@bounce.example.net"]),
        email(subject="Newsletter", sender="news@example.net", to=["gone@example.org", "z@x.org"]),
    ]
    return [ok(api.post("/email/send", json=b))["email_id"] for b in bodies]


def search(api: httpx.Client, **body: object) -> dict[str, Any]:
    data: dict[str, Any] = ok(api.post("/activity/search", json=body))
    return data


def test_events_per_recipient(api: httpx.Client, sent: list[str]) -> None:
    data = search(api)
    events = data["events"]
    assert data["total_events"] == len(events) == 9
    assert data["continue_token"] is None
    by_kind = sorted((e["event"], e["recipient"]) for e in events)
    assert by_kind == [
        ("delivered", "ann@example.org"),
        ("delivered", "ann@example.org"),
        ("delivered", "z@x.org"),
        ("hard-bounced", "bad@bounce.example.net"),
        ("processed", "ann@example.org"),
        ("processed", "ann@example.org"),
        ("processed", "bad@bounce.example.net"),
        ("processed", "z@x.org"),
        ("rejected", "gone@example.org"),
    ]
    first = events[0]
    assert first["email_id"] == sent[0]
    assert first["sender"] == "shop@example.com"
    assert first["subject"] == "Order 1"
    assert first["custom_headers"] == {"X-Outbox-Id": "o-1"}
    assert first["headers"] == {"X-Outbox-Id": "o-1"}
    assert datetime.fromisoformat(first["date"]).tzinfo is not None


def test_filters(api: httpx.Client, sent: list[str]) -> None:
    def kinds(**body: object) -> list[tuple[str, str]]:
        events = search(api, **body)["events"]
        return [(e["event"], e["recipient"]) for e in events]

    assert kinds(event_types=["hard-bounced"]) == [("hard-bounced", "bad@bounce.example.net")]
    assert kinds(email_id=sent[2]) == [
        ("processed", "z@x.org"),
        ("delivered", "z@x.org"),
        ("rejected", "gone@example.org"),
    ]
    assert len(kinds(email_id=[sent[0], sent[1]])) == 6
    assert len(kinds(search_email_id=sent[0])) == 2
    assert kinds(search_recipient="BOUNCE.example.NET", event_types=["processed"]) == [
        ("processed", "bad@bounce.example.net")
    ]
    assert len(kinds(search_sender="news@")) == 3
    assert len(kinds(search_subject="order")) == 6
    assert len(kinds(search="newsletter | bad@bounce")) == 5
    assert kinds(start_date=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()) == []
    assert len(kinds(start_date="2000-01-01", end_date="2000-01-02")) == 0
    assert len(kinds(only_latest=True)) == 5
    asked = search(api, email_id=sent[0], custom_headers=["x-outbox-id", "X-Missing"])
    assert asked["events"][0]["custom_headers"] == {"x-outbox-id": "o-1"}
    raw = search(api, email_id=sent[0], include_headers=True)["events"][0]
    assert "X-Outbox-Id: o-1" in raw["headers"]


def test_pages_with_continue_token(api: httpx.Client, sent: list[str]) -> None:
    collected: list[tuple[str, str, str]] = []
    token = None
    pages = 0
    while True:
        data = search(api, limit=4, continue_token=token)
        assert data["total_events"] == 9
        collected += [(e["email_id"], e["event"], e["recipient"]) for e in data["events"]]
        pages += 1
        token = data["continue_token"]
        if token is None:
            break
    assert pages == 3
    assert len(set(collected)) == 9


@pytest.mark.parametrize(
    ("body", "fieldname"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"event_types": ["bounce"]}, "event_types"),
        ({"start_date": "yesterday-ish"}, "start_date"),
        ({"continue_token": "not-a-token"}, "continue_token"),
        ({"email_id": 5}, "email_id"),
    ],
    ids=[
        "limit over 100",
        "limit 0",
        "webhook name, not activity name",
        "bad date",
        "bad token",
        "bad id",
    ],
)
def test_invalid_search(api: httpx.Client, body: dict[str, object], fieldname: str) -> None:
    assert field_error(api.post("/activity/search", json=body)) == fieldname


def test_stats_from_accepted_sends(api: httpx.Client, sent: list[str]) -> None:
    summary = ok(api.post("/stats/email_summary", json={}))
    assert summary["email_count"] == 4  # recipients accepted: 1 + 2 + 1 (gone is rejected)
    assert summary["hardbounces"] == 1
    assert summary["rejects"] == 1
    assert summary["bounce_percent"] == "25.00"
    assert summary["spam_percent"] == "0.00"
    assert summary["unsubscribe_percent"] == "0.00"
    assert summary["cycle_used"] == 4

    cycle = ok(api.post("/stats/email_cycle", json={}))
    assert set(cycle) == {"cycle_start", "cycle_end", "cycle_used", "cycle_remaining", "cycle_max"}
    assert cycle["cycle_used"] + cycle["cycle_remaining"] == cycle["cycle_max"]
    assert datetime.fromisoformat(cycle["cycle_start"]) < datetime.fromisoformat(cycle["cycle_end"])

    bounces = ok(api.post("/stats/email_bounces", json={}))
    assert bounces == {
        "emails": 4,
        "rejects": 1,
        "softbounces": 0,
        "hardbounces": 1,
        "bounce_percent": "25.00",
    }
    assert ok(api.post("/stats/email_spam", json={}))["spam_percent"] == "0.00"
    assert ok(api.post("/stats/email_unsubs", json={}))["unsubscribe_percent"] == "0.00"

    history = ok(api.post("/stats/email_history", json={}))
    assert history["count"] == 4
    assert {row["email_address"]: row["used"] for row in history["history"]} == {
        "shop@example.com": 3,
        "news@example.net": 1,
    }
    by_domain = ok(api.post("/stats/email_history", json={"group_by": "domain"}))
    assert {row["domain"] for row in by_domain["history"]} == {"example.com", "example.net"}


def test_auto_suppression_of_hard_bounces_when_enabled(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(suppress_bounces=True)
    ok(api.post("/email/send", json=email(to=["bad@bounce.example.net"])))
    again = ok(api.post("/email/send", json=email(to=["bad@bounce.example.net"])))
    assert (again["succeeded"], again["failed"]) == (1, 0)  # accepted, then rejected
    assert sandbox.messages()[-1]["rejected"] == ["bad@bounce.example.net"]
    view = ok(api.post("/suppression/view", json={"reason": "bounce"}))
    assert [r["email_address"] for r in view["results"]] == ["bad@bounce.example.net"]
