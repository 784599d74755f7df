"""``outbox suppressions list|add|remove`` against the real sandbox (a server process),
with outbox's records on fakeredis: both sides, where each entry is, what a send then
meets, and a key without the permission."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from outbox import erase, send_email, status
from outbox.cli.main import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, main
from outbox.core.settings import Settings
from outbox.core.smtp2go.endpoints import SUPPRESSION_VIEW
from outbox.core.smtp2go.models import SuppressionView
from outbox.core.states import State
from outbox.core.store import keys
from outbox.worker import beat
from outbox.worker.runtime import Runtime, set_runtime
from tests.conftest import TEST_API_KEY, Sandbox
from tests.unit.test_erase import everything

pytestmark = pytest.mark.timeout(60)

SENDER = "Shop <shop@example.com>"


@pytest.fixture
def rt(fake_redis: Any, sandbox: Sandbox) -> Iterator[Runtime]:
    """Records on fakeredis; the API is the session's sandbox, reset."""
    settings = Settings(
        SMTP2GO_API_KEY=TEST_API_KEY,
        SMTP2GO_BASE_URL=sandbox.base_url,
        SMTP2GO_TIMEOUT=10,
        OUTBOX_RATE_LIMIT="1000/s",
    )
    runtime = Runtime.from_settings(settings, redis_client=fake_redis)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)
    runtime.close()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["suppressions", *args], catch_exceptions=False)


def api(sandbox: Sandbox, path: str, **body: Any) -> dict[str, Any]:
    """A request straight to the sandbox, as SMTP2GO's dashboard would change the list."""
    response = httpx.post(
        f"{sandbox.base_url}/{path}",
        headers={"X-Smtp2go-Api-Key": sandbox.api_key},
        json=body,
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json()["data"])


def at_smtp2go(sandbox: Sandbox, address: str) -> list[str]:
    """The reasons SMTP2GO holds ``address`` suppressed for."""
    rows = api(sandbox, "suppression/view", email_address=address)["results"]
    return sorted(r["reason"] for r in rows)


def local(rt: Runtime, address: str) -> bool:
    return address in rt.store.suppressions.matching([address])


def listed(*args: str) -> dict[str, dict[str, Any]]:
    result = invoke("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return {e["address"]: e for e in json.loads(result.stdout)["suppressions"]}


def deliver(sandbox: Sandbox, broker: Any, to: str) -> tuple[Any, list[dict[str, Any]]]:
    """A send to ``to`` through the producer and this process's task: its record, and
    what the sandbox then kept of it."""
    import outbox.worker.tasks  # noqa: F401  (registers the tasks, as a worker's start does)
    from outbox.worker.celery_app import app

    handle = send_email(SENDER, [to], "Hello", text_body="again")
    for name, args, _queue in broker.drain():
        app.tasks[name].apply(args=args)
    record = status(handle.id)
    ids = {c.email_id for c in record.chunks}
    return record, [m for m in sandbox.messages() if m.get("email_id") in ids]


def test_list_marks_where_each_entry_is(rt: Runtime, sandbox: Sandbox) -> None:
    api(sandbox, "suppression/add", email_address="Remote@Example.org", block_description="x")
    api(sandbox, "suppression/add", email_address="both@example.org")
    rt.store.suppressions.add("both@example.org", "local@example.org")

    entries = listed()
    assert {a: e["where"] for a, e in entries.items()} == {
        "remote@example.org": "smtp2go",
        "both@example.org": "both",
        "local@example.org": "local",
    }
    assert entries["remote@example.org"]["reasons"] == ["manual"]
    assert entries["remote@example.org"]["description"] == "x"
    assert entries["remote@example.org"]["added"]
    assert entries["local@example.org"]["reasons"] == []
    assert set(listed("--search", "REMOTE")) == {"remote@example.org"}

    shown = invoke("list")
    assert shown.exit_code == 0, shown.output
    assert "3 suppression(s): 1 in both, 1 only at SMTP2GO, 1 only local" in shown.stdout
    assert "drift" in shown.stdout


def test_add_then_remove_changes_both_sides_and_the_address_is_sent_to_again(
    rt: Runtime, sandbox: Sandbox, memory_broker: Any
) -> None:
    address = "ann@example.org"
    added = invoke("add", "Ann@Example.org", "--reason", "asked us to stop", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {
        "added": [{"address": address, "smtp2go": True, "local_new": True}]
    }
    assert at_smtp2go(sandbox, address) == ["manual"]
    assert local(rt, address)
    assert listed()[address]["where"] == "both"
    assert listed()[address]["description"] == "asked us to stop"

    refused, _ = deliver(sandbox, memory_broker, address)  # the producer refuses it now
    assert refused.rejected == [address]

    removed = invoke("remove", address, "--json")
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout) == {
        "removed": [{"address": address, "smtp2go": ["manual"], "local": True}]
    }
    assert at_smtp2go(sandbox, address) == []
    assert not local(rt, address)
    assert address not in listed()

    record, kept = deliver(sandbox, memory_broker, address)
    assert record.rejected == []
    assert record.state is State.SENT
    assert [(m["recipients"], m["rejected"]) for m in kept] == [([address], [])]


def test_remove_lifts_every_reason_smtp2go_has_and_says_when_there_was_nothing(
    rt: Runtime, sandbox: Sandbox
) -> None:
    api(sandbox, "suppression/add", email_address="remote@example.org")
    shown = invoke("remove", "remote@example.org", "local@example.org")
    assert shown.exit_code == 0, shown.output
    assert "lifted remote@example.org: at SMTP2GO (manual)" in shown.stdout
    assert "local@example.org was not suppressed" in shown.stdout

    nothing = invoke("remove", "nobody@example.org")
    assert nothing.exit_code == EXIT_FAILED
    assert "nothing to remove" in nothing.stderr


def test_a_removed_address_is_not_brought_back_by_a_sync_that_read_before(
    rt: Runtime, sandbox: Sandbox
) -> None:
    address = "ann@example.org"
    assert invoke("add", address).exit_code == 0
    # A sync began and read SMTP2GO's list while the address was still on it ...
    since = rt.store.now()
    rows, complete = beat.read_suppressions(
        lambda q: rt.client.call(SUPPRESSION_VIEW, q), SuppressionView()
    )
    assert complete
    assert [r["email_address"] for r in rows] == [address]
    # ... then the operator lifted it, before the sync wrote what it read.
    assert invoke("remove", address).exit_code == 0
    assert rt.store.suppressions.add_synced([address], since) == 0
    assert not local(rt, address)
    # A read that began after the removal is believed: SMTP2GO blocks it again.
    assert rt.store.suppressions.add_synced([address], rt.store.now()) == 1
    assert rt.store.suppressions.remove(address) == [address]

    # The next scheduled sync reads SMTP2GO as it is now and leaves it out as well.
    assert beat.sync_suppressions() == 0
    assert not local(rt, address)
    # Lifting an erased address lets it be sent to again too (erase keeps it refused).
    rt.store.suppressions.add("gone@example.org")
    erase("gone@example.org")
    assert local(rt, "gone@example.org")
    assert rt.store.suppressions.remove("gone@example.org") == ["gone@example.org"]
    assert not local(rt, "gone@example.org")


def test_a_key_without_the_permission_is_told_which_one(rt: Runtime, sandbox: Sandbox) -> None:
    sandbox.configure(key_permissions=["email/send"])
    rt.store.suppressions.add("local@example.org")

    listing = invoke("list")
    assert listing.exit_code == EXIT_USAGE
    assert "the API key may not call suppression/view" in listing.stderr
    assert "add /suppression/view to the key's permissions in SMTP2GO" in listing.stderr
    assert TEST_API_KEY not in listing.output
    # Known to the fleet, as a worker's refusal is: beat's sync does not ask for an hour.
    assert rt.store.account.denied("suppression/view", rt.store.now())

    as_json = invoke("list", "--json")
    assert as_json.exit_code == EXIT_USAGE
    error = json.loads(as_json.stdout)
    assert (error["permission"], error["endpoint"]) == ("/suppression/view", "suppression/view")

    adding = invoke("add", "ann@example.org", "--json")
    assert adding.exit_code == EXIT_USAGE
    assert json.loads(adding.stdout)["permission"] == "/suppression/add"
    assert not local(rt, "ann@example.org")  # SMTP2GO refused: nothing changed here

    removing = invoke("remove", "local@example.org")
    assert removing.exit_code == EXIT_USAGE
    assert "/suppression/view" in removing.stderr
    assert local(rt, "local@example.org")

    # Once the key may, --recheck asks again at once, and the sync is back on with it.
    sandbox.configure(key_permissions=["email/send", "suppression/view"])
    assert invoke("list", "--recheck").exit_code == 0
    assert not rt.store.account.denied("suppression/view", rt.store.now())


def test_an_endpoint_refused_within_the_hour_is_not_asked_again_unless_rechecked(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """As beat's jobs: an error answer counts towards the IP's timeout, which stops the
    fleet's sending too, so a refusal the fleet knows of stands until its recheck."""
    rt.store.account.deny("suppression/view", rt.store.now() + 3600)
    asked = sandbox.stats()["requests"]

    listing = invoke("list")
    assert listing.exit_code == EXIT_USAGE
    assert "the API key may not call suppression/view" in listing.stderr
    assert "add /suppression/view to the key's permissions in SMTP2GO" in listing.stderr
    assert "--recheck" in listing.stderr
    assert sandbox.stats()["requests"] == asked
    removing = invoke("remove", "ann@example.org", "--json")
    assert removing.exit_code == EXIT_USAGE
    assert json.loads(removing.stdout)["permission"] == "/suppression/view"

    assert invoke("list", "--recheck").exit_code == 0  # the sandbox's key may
    assert not rt.store.account.denied("suppression/view", rt.store.now())


def test_a_429_cools_the_fleet_down_and_counts_it_as_a_job_does(
    rt: Runtime, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outbox.core.errors import RateLimitedError

    cooled: list[float] = []
    monkeypatch.setattr(rt.metrics, "cooled", cooled.append)

    def too_many(*_args: Any, **_kwargs: Any) -> Any:
        raise RateLimitedError("too many requests", status_code=429)

    monkeypatch.setattr(rt.client, "call", too_many)
    listing = invoke("list")
    assert listing.exit_code == EXIT_UNREACHABLE
    assert rt.store.limits.cooling_for() > 0
    assert len(cooled) == 1
    assert cooled[0] > 0


def test_a_bad_address_is_refused_naming_the_field_before_any_request(
    rt: Runtime, sandbox: Sandbox
) -> None:
    result = invoke("add", "ok@example.org", "not an address", "--json")
    assert result.exit_code == EXIT_USAGE
    error = json.loads(result.stdout)
    assert error["field"] == "email_address"
    assert "'not an address'" in error["error"]
    assert at_smtp2go(sandbox, "ok@example.org") == []
    assert not local(rt, "ok@example.org")


def test_without_an_api_key_it_says_which_setting(fake_redis: Any, sandbox: Sandbox) -> None:
    settings = Settings(SMTP2GO_BASE_URL=sandbox.base_url)
    set_runtime(Runtime.from_settings(settings, redis_client=fake_redis))
    try:
        result = invoke("list")
    finally:
        set_runtime(None)
    assert result.exit_code == EXIT_USAGE
    assert "SMTP2GO_API_KEY is not set" in result.stderr


def test_erasing_an_address_lifted_today_leaves_no_clear_copy(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """A lift is remembered for a day (so a sync does not bring it back), by its keyed
    hash: no readable copy of the address, before or after it is erased."""
    address = "lifted@example.org"
    assert invoke("add", address).exit_code == 0
    assert invoke("remove", address).exit_code == 0
    assert rt.redis.zscore(keys.suppressed_lifted(), address) is None
    assert rt.redis.zcard(keys.suppressed_lifted()) == 1
    assert address not in everything(rt.redis)
    erase(address)
    assert address not in everything(rt.redis)


def test_an_erased_address_smtp2go_still_holds_is_synced_back_as_its_hash_only(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """The key may not lift it at SMTP2GO: erase says so, and beat's sync, finding it
    on SMTP2GO's list, keeps it refused by its keyed hash, never readable."""
    address = "gone@example.org"
    sandbox.configure(key_permissions=["email/send", "suppression/view", "suppression/add"])
    api(sandbox, "suppression/add", email_address=address)

    erased = CliRunner().invoke(main, ["erase", address, "--json"], catch_exceptions=False)
    assert erased.exit_code == 0, erased.output
    note = json.loads(erased.stdout)["smtp2go"]
    assert (
        note == "not removed: the API key may not call suppression/remove (add /suppression/remove)"
    )
    assert at_smtp2go(sandbox, address) == ["manual"]
    assert local(rt, address)  # SMTP2GO held it: refused here too, by its hash

    assert beat._suppressions(rt) == 1
    assert local(rt, address)
    assert address not in everything(rt.redis)
    assert rt.store.suppressions.erased_note(address) == note


def test_erase_lifts_the_address_at_smtp2go_and_keeps_it_refused_here(
    rt: Runtime, sandbox: Sandbox
) -> None:
    address = "gone@example.org"
    api(sandbox, "suppression/add", email_address=address)
    assert not local(rt, address)  # not synced yet

    assert erase(address) >= 1
    assert at_smtp2go(sandbox, address) == []
    assert local(rt, address)
    assert address not in everything(rt.redis)
    note = rt.store.suppressions.erased_note(address)
    assert note == "removed from SMTP2GO's suppression list (manual)"


def test_removing_an_erased_address_lifts_it_but_it_stays_erased(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """``remove`` lifts an erased address's suppression (the operator named it: it may be
    sent to again), but the person stays erased: suppressed at SMTP2GO again later, the
    sync keeps it by its hash, never readable."""
    address = "gone@example.org"
    assert invoke("add", address).exit_code == 0
    assert erase(address) >= 1
    assert local(rt, address)
    assert invoke("remove", address).exit_code == 0
    assert not local(rt, address)

    api(sandbox, "suppression/add", email_address=address)
    assert beat._suppressions(rt) == 1
    assert local(rt, address)
    assert address not in everything(rt.redis)
