"""The ``outbox`` command line on a fakeredis runtime and kombu's in-memory broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result

from outbox import send_email, send_sms
from outbox.cli.demo.stack import split_redis_url
from outbox.cli.main import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, main
from outbox.cli.output import when
from outbox.core.settings import Settings
from outbox.core.states import State
from outbox.core.store import keys
from outbox.worker.runtime import Runtime, set_runtime

pytestmark = pytest.mark.usefixtures("runtime")


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No terminal, and no ``COLUMNS`` from the shell running the tests: lines are cut
    at 160 columns, as in a pipe."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def broker(memory_broker: Any) -> Iterator[Any]:
    """``memory_broker``, made to win over ``CELERY_BROKER_URL``.

    Celery's ``conf.broker_url`` answers the environment variable first (the test
    session sets it), so the read and write URLs, which take precedence, are set too.
    """
    from outbox.worker.celery_app import app

    app.conf.broker_read_url = app.conf.broker_write_url = "memory://localhost/"
    app._pool = None
    app.amqp._producer_pool = None
    memory_broker.drain()
    try:
        yield memory_broker
    finally:
        app.conf.broker_read_url = app.conf.broker_write_url = None
        app._pool = None
        app.amqp._producer_pool = None


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def make_dead(rt: Runtime, chunk_id: str) -> None:
    error = {"type": "ServerError", "message": "try again", "status_code": 503}
    rt.store.batches.finish(chunk_id, State.DEAD, limit=rt.send_limit, fields={"last_error": error})


# -- status -------------------------------------------------------------------------------


def test_status_of_a_fresh_record(broker: Any) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="Thanks")
    result = invoke("status", handle.id)
    assert result.exit_code == 0, result.output
    assert handle.id in result.stdout
    assert "queued" in result.stdout
    assert f"{handle.id}.0" in result.stdout


def test_status_json_parses(broker: Any) -> None:
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(150)], "Hi", text_body="x"
    )
    result = invoke("status", handle.id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == handle.id
    assert data["state"] == "queued"
    assert data["recipients"] == 150
    assert [c["id"] for c in data["chunks"]] == [f"{handle.id}.0", f"{handle.id}.1"]
    assert data["done"] is False


def test_status_of_one_chunk(broker: Any) -> None:
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(150)], "Hi", text_body="x"
    )
    data = json.loads(invoke("status", f"{handle.id}.1", "--json").stdout)
    assert [c["id"] for c in data["chunks"]] == [f"{handle.id}.1"]


def test_status_history_shows_transitions(broker: Any, runtime: Runtime) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    make_dead(runtime, f"{handle.id}.0")
    result = invoke("status", handle.id, "--history")
    assert result.exit_code == 0, result.output
    assert "dead" in result.stdout
    assert "ServerError 503" in result.stdout


def test_status_shows_what_delivery_events_say(runtime: Runtime) -> None:
    from outbox.worker.webhooks.parse import normalise
    from outbox.worker.webhooks.tasks import record
    from tests.unit.conftest import sent_batch

    batch_id = sent_batch(runtime, ["E1"], ["ann@example.org"])
    bounce = {
        "event": "bounce",
        "id": "b" * 32,
        "email_id": "E1",
        "rcpt": "ann@example.org",
        "bounce": "hard",
        "host": "mx.example.org [192.0.2.1]",
        "context": "RCPT TO:<ann@example.org>",
        "message": "550 5.1.1 User unknown",
    }
    record(runtime, normalise(bounce, received_at=1.0))
    result = invoke("status", batch_id)
    assert result.exit_code == 0, result.output
    assert "hard - 550 5.1.1 User unknown" in result.stdout
    assert "recipients by fate: 1 hard-bounced" in result.stdout


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (0, "-"),
        (1_774_340_599.12, local(datetime.fromtimestamp(1_774_340_599.12, UTC))),
        ("1774340599.12", local(datetime.fromtimestamp(1_774_340_599.12, UTC))),
        ("2026-03-24T08:23:19Z", local(datetime(2026, 3, 24, 8, 23, 19, tzinfo=UTC))),
        ("2026-11-01 00:00:00+00:00", local(datetime(2026, 11, 1, tzinfo=UTC))),
        ("2026-11-01 00:00:00", local(datetime(2026, 11, 1, tzinfo=UTC))),  # no offset: UTC
        ("soon", "soon"),
    ],
)
def test_every_time_reads_the_same_way(value: Any, shown: str) -> None:
    assert when(value) == shown


def test_status_history_and_events_show_no_raw_epoch(broker: Any, runtime: Runtime) -> None:
    from outbox.worker.webhooks.parse import normalise
    from outbox.worker.webhooks.tasks import record
    from tests.unit.conftest import sent_batch

    lease = 1_774_340_601.5
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    runtime.store.batches.finish(
        f"{handle.id}.0",
        State.RETRYING,
        limit=runtime.send_limit,
        log={"attempt": 1, "retry_in": 0.4, "slot_at": lease - 1, "lease_until": lease},
    )
    shown = invoke("status", handle.id, "--history").stdout
    assert "retry in 0.4 s" in shown
    assert f"lease_until {when(lease)}" in shown
    assert f"slot_at {when(lease - 1)}" in shown
    assert "1774340" not in shown  # no epoch beside the formatted times

    batch_id = sent_batch(runtime, ["E9"], ["bob@example.org"])
    delivered = {
        "event": "delivered",
        "id": "d" * 32,
        "email_id": "E9",
        "rcpt": "bob@example.org",
        "time": "2026-03-24T08:23:19Z",
    }
    record(runtime, normalise(delivered, received_at=1_774_340_700.0))
    events = invoke("status", batch_id).stdout
    assert when("2026-03-24T08:23:19Z") in events  # when it happened, in local time
    assert "08:23:19Z" not in events
    assert "1774340" not in events


def test_status_of_an_unknown_id_exits_1() -> None:
    result = invoke("status", "no-such-id")
    assert result.exit_code == EXIT_FAILED
    assert "no record 'no-such-id'" in result.stderr
    assert result.stdout == ""


#: When the events of the sends below came in.
_T0 = 1_774_340_000.0


def delivered_send(rt: Runtime, recipients: list[str], failed: tuple[int, ...] = ()) -> str:
    """A send whose chunks were accepted (but those in ``failed``), each with the webhook
    events SMTP2GO posts: one ``processed`` naming the chunk's recipients, then one
    ``delivered`` per recipient."""
    from outbox.worker.webhooks.parse import normalise
    from outbox.worker.webhooks.tasks import record

    handle = send_email("shop@example.com", recipients, "Hi", text_body="x")
    moment = _T0
    for chunk in handle.status().chunks:
        if chunk.index in failed:
            make_failed(rt, chunk.id)
            continue
        email_id = f"E{chunk.index}"
        rt.store.batches.finish(chunk.id, State.SENT, limit=rt.send_limit, email_id=email_id)
        processed = {"event": "processed", "id": f"p{chunk.index}", "email_id": email_id}
        record(rt, normalise({**processed, "recipients": chunk.recipients}, received_at=moment))
        for n, rcpt in enumerate(chunk.recipients):
            moment += 1
            delivered = {"event": "delivered", "id": f"d{chunk.index}.{n}", "rcpt": rcpt}
            body = {**delivered, "email_id": email_id, "message": "250 2.0.0 OK " + "x" * 300}
            record(rt, normalise(body, received_at=moment))
    return handle.id


def test_status_of_a_big_send_is_a_summary_that_fits(broker: Any, runtime: Runtime) -> None:
    batch_id = delivered_send(runtime, [f"u{i:04d}@example.org" for i in range(1000)], (7,))
    result = invoke("status", batch_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) <= 60
    assert max(len(line) for line in lines) <= 160
    assert "recipients by fate: 900 delivered, 100 failed" in result.stdout
    assert "chunks 10: 9 sent, 1 failed" in result.stdout
    [failed] = [line for line in lines if f"{batch_id}.7" in line]
    assert "failed" in failed
    assert "UnauthorizedError 401: bad key" in failed
    shown = [line.split()[0] for line in lines if line.strip().startswith(f"{batch_id}.")]
    assert shown == [f"{batch_id}.{i}" for i in (0, 1, 2, 3, 4, 7)]
    assert f"... 4 more chunks: outbox status {batch_id} --chunks" in result.stdout
    assert "delivery events (909, the latest 10)" in result.stdout
    assert "u0999@example.org" in result.stdout  # the newest event
    assert "u0989@example.org" not in result.stdout
    assert "\u2026" in result.stdout  # the servers' long answers are cut, not wrapped
    more = " ".join(line.strip() for line in lines[-3:])
    for option in ("--chunks", "--events", "--recipient ADDR", "--recipients", "--json"):
        assert option in more

    data = json.loads(invoke("status", batch_id, "--json").stdout)  # everything, as ever
    assert len(data["chunks"]) == 10
    assert sum(len(c["events"]) for c in data["chunks"]) == 909


def test_status_summary_shows_the_chunks_in_trouble_capped(broker: Any, runtime: Runtime) -> None:
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(2000)], "Hi", text_body="x"
    )
    for index in range(6, 20):
        make_dead(runtime, f"{handle.id}.{index}")
    text = invoke("status", handle.id).stdout
    shown = [line.split()[0] for line in text.splitlines() if f"{handle.id}." in line.split()[0]]
    assert shown == [f"{handle.id}.{i}" for i in [0, 1, 2, 3, 4, *range(6, 16)]]
    assert "... 5 more chunks" in text
    assert "4 of them failed, dead or retrying" in text
    assert "no delivery events yet" in text

    dead = invoke("status", handle.id, "--chunks", "--state", "dead", "--offset", "10").stdout
    assert [f"{handle.id}.{i}" in dead for i in (15, 16, 19)] == [False, True, True]
    assert "showing 11\u201314 of 14 chunks" in dead


def test_status_chunks_lists_every_chunk_a_page_at_a_time(broker: Any, runtime: Runtime) -> None:
    handle = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(1000)], "Hi", text_body="x"
    )
    make_failed(runtime, f"{handle.id}.3")

    def listed(*args: str) -> list[str]:
        out = invoke("status", handle.id, "--chunks", *args).stdout
        return [line.split()[0] for line in out.splitlines() if line.startswith(f"  {handle.id}.")]

    assert listed() == [f"{handle.id}.{i}" for i in range(10)]
    assert "showing 1\u201310 of 10 chunks" in invoke("status", handle.id, "--chunks").stdout
    assert listed("--limit", "3", "--offset", "2") == [f"{handle.id}.{i}" for i in (2, 3, 4)]
    page = invoke("status", handle.id, "--chunks", "--limit", "3", "--offset", "2").stdout
    assert "showing 3\u20135 of 10 chunks; next: --offset 5" in page
    assert listed("--state", "failed") == [f"{handle.id}.3"]
    assert "showing none of 10 chunks (offset 10)" in (
        invoke("status", handle.id, "--chunks", "--offset", "10").stdout
    )
    history = invoke("status", handle.id, "--history", "--limit", "1", "--offset", "3").stdout
    assert "UnauthorizedError 401" in history  # --history lists the chunks, paged too
    assert f"{handle.id}.4" not in history
    rows = json.loads(invoke("status", handle.id, "--chunks", "--limit", "2", "--json").stdout)
    assert [r["id"] for r in rows] == [f"{handle.id}.0", f"{handle.id}.1"]


def test_status_events_lists_every_event_a_page_at_a_time(broker: Any, runtime: Runtime) -> None:
    batch_id = delivered_send(runtime, [f"u{i:03d}@example.org" for i in range(150)])
    everything = invoke("status", batch_id, "--events").stdout
    assert sum("delivered" in line for line in everything.splitlines()) == 150
    assert "showing 1\u2013152 of 152 events" in everything
    # the first event: chunk 0's processed, its 100 addresses as two and a count
    assert "u000@example.org, u001@example.org +98 more" in everything

    page = invoke("status", batch_id, "--events", "--limit", "10", "--offset", "140").stdout
    rows = [line for line in page.splitlines() if " delivered " in line]
    assert len(rows) == 10
    assert "u138@example.org" in rows[0]  # 100 + 1 processed + 38 + this chunk's processed
    assert "showing 141\u2013150 of 152 events; next: --offset 150" in page
    events = json.loads(invoke("status", batch_id, "--events", "--offset", "150", "--json").stdout)
    assert [e["rcpt"] for e in events] == ["u148@example.org", "u149@example.org"]


def test_status_of_one_recipient(broker: Any, runtime: Runtime) -> None:
    batch_id = delivered_send(runtime, [f"u{i:03d}@example.org" for i in range(150)], (0,))
    text = invoke("status", batch_id, "--recipient", "Ann <U120@Example.org>").stdout
    lines = text.splitlines()
    assert lines[0].split() == ["u120@example.org", "delivered"]
    assert f"{batch_id}.1" in text
    assert f"{batch_id}.0" not in text
    assert "delivery events naming it (2)" in text
    [processed] = [line for line in lines if "processed" in line]
    assert "u120@example.org, u100@example.org +48 more" in processed  # it leads its list
    [delivered] = [line for line in lines if " delivered " in line]
    assert "u120@example.org" in delivered

    data = json.loads(
        invoke("status", batch_id, "--recipient", "u007@example.org", "--json").stdout
    )
    assert (data["state"], data["chunk_id"], data["events"]) == ("failed", f"{batch_id}.0", [])
    unknown = invoke("status", batch_id, "--recipient", "nobody@example.org")
    assert unknown.exit_code == EXIT_FAILED
    assert f"no recipient 'nobody@example.org' in send {batch_id}" in unknown.stderr


def test_status_cuts_cells_to_the_terminal(broker: Any, runtime: Runtime) -> None:
    batch_id = delivered_send(runtime, [f"u{i:03d}@example.org" for i in range(3)])
    runner = CliRunner(env={"COLUMNS": "70"})
    text = runner.invoke(main, ["status", batch_id, "--events"], catch_exceptions=False).stdout
    assert max(len(line) for line in text.splitlines()) <= 70
    [row] = [line for line in text.splitlines() if "u001@example.org" in line and "deliv" in line]
    assert row.endswith("\u2026")
    assert "250 2.0.0 OK xx" in row
    chunks = runner.invoke(main, ["status", batch_id], catch_exceptions=False).stdout
    assert f"{batch_id}.0" in chunks  # an id is never cut


def test_table_fits_a_width_narrowing_the_widest_column() -> None:
    from outbox.cli.output import table

    rows = [["abc", "x" * 100, "y" * 50], ["d", "short", "z"]]
    assert table(["a", "b", "c"], rows).splitlines()[1].endswith("y" * 50)
    lines = [click.unstyle(line) for line in table(["a", "b", "c"], rows, width=60).splitlines()]
    # the first column whole; the other two narrowed alike, each cut ending in an ellipsis
    assert lines[1] == "  abc  " + "x" * 24 + "\u2026  " + "y" * 25 + "\u2026"
    assert lines[2] == "  d    short" + " " * 20 + "  z"
    assert len(lines[0]) <= 60
    capped = table(["a", "b"], [["x" * 30, "y" * 30]], cell=10).splitlines()[1]
    assert capped == "  " + "x" * 9 + "\u2026  " + "y" * 9 + "\u2026"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--chunks", "--events"], "give one of --chunks (or --history), --events"),
        (["--history", "--recipient", "a@x.org"], "give one of --chunks (or --history)"),
        (["--limit", "5"], "--limit and --offset page --chunks, --events or --recipients"),
        (["--events", "--state", "failed"], "--state goes with --chunks or --recipients"),
        (["--chunks", "--state", "gone"], "--state 'gone' is not a chunk state"),
    ],
)
def test_status_options_that_do_not_go_together_exit_2(
    broker: Any, args: list[str], said: str
) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    result = invoke("status", handle.id, *args)
    assert result.exit_code == EXIT_USAGE
    assert said in result.stderr


# -- dead letters -------------------------------------------------------------------------


def test_dead_list_and_replay(broker: Any, runtime: Runtime) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    broker.drain()
    chunk_id = f"{handle.id}.0"
    make_dead(runtime, chunk_id)

    listed = json.loads(invoke("dead", "list", "--json").stdout)
    assert [row["id"] for row in listed] == [chunk_id]
    assert listed[0]["kind"] == "email"
    assert listed[0]["recipients"] == 1
    assert listed[0]["last_error"]["status_code"] == 503
    assert chunk_id in invoke("dead", "list").stdout

    result = invoke("dead", "replay", chunk_id, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "replayed": [{"id": chunk_id, "task": "outbox.send_email", "queue": "email"}],
        "skipped": [],
    }
    [(name, (published_id, payload), queue)] = broker.drain()
    assert (name, published_id, queue) == ("outbox.send_email", chunk_id, "email")
    assert payload["to"] == ["ann@example.org"]
    assert payload["subject"] == "Hi"
    chunk = runtime.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert (chunk.state, chunk.attempts, chunk.replays) == (State.QUEUED, 0, 1)
    assert json.loads(invoke("dead", "list", "--json").stdout) == []


def test_dead_replay_all_and_by_batch(broker: Any, runtime: Runtime) -> None:
    email = send_email(
        "shop@example.com", [f"u{i}@example.org" for i in range(150)], "Hi", text_body="x"
    )
    sms = send_sms(["+61400000001"], "code 1234")
    broker.drain()
    for chunk_id in (f"{email.id}.0", f"{email.id}.1", f"{sms.id}.0"):
        make_dead(runtime, chunk_id)

    by_batch = invoke("dead", "replay", email.id)
    assert by_batch.exit_code == 0, by_batch.output
    assert sorted(args[0] for _, args, _ in broker.drain()) == [f"{email.id}.0", f"{email.id}.1"]

    everything = invoke("dead", "replay", "--all")
    assert everything.exit_code == 0, everything.output
    assert [(name, queue) for name, _, queue in broker.drain()] == [("outbox.send_sms", "sms")]


def test_dead_replay_with_the_broker_down_changes_nothing(runtime: Runtime) -> None:
    from outbox.worker.celery_app import app

    handle = send_sms(["+61400000001"], "code 1234", send_at=time.time() + 3600)
    chunk_id = f"{handle.id}.0"
    make_dead(runtime, chunk_id)
    app.conf.broker_read_url = app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        result = invoke("dead", "replay", chunk_id)
    finally:
        app.conf.broker_read_url = app.conf.broker_write_url = None
        app._pool = None
        app.amqp._producer_pool = None
    assert result.exit_code == EXIT_UNREACHABLE
    assert "cannot reach the broker" in result.stderr
    chunk = runtime.store.batches.chunk(chunk_id)
    assert chunk is not None
    assert chunk.state is State.DEAD


def test_dead_replay_of_a_live_chunk_is_skipped(broker: Any) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    broker.drain()
    result = invoke("dead", "replay", f"{handle.id}.0")
    assert result.exit_code == EXIT_FAILED
    assert "not dead (state queued)" in result.stderr
    assert broker.drain() == []


def test_dead_list_cuts_its_lines_to_the_terminal(broker: Any, runtime: Runtime) -> None:
    handle = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    broker.drain()
    chunk_id = f"{handle.id}.0"
    make_dead(runtime, chunk_id)
    runner = CliRunner(env={"COLUMNS": "70"})
    text = runner.invoke(main, ["dead", "list"], catch_exceptions=False).stdout
    assert max(len(line) for line in text.splitlines()) <= 70
    assert chunk_id in text  # an id is never cut


def test_dead_replay_needs_ids_or_all() -> None:
    assert invoke("dead", "replay").exit_code == EXIT_USAGE
    assert invoke("dead", "replay", "x.0", "--all").exit_code == EXIT_USAGE


def test_dead_list_when_empty() -> None:
    result = invoke("dead", "list")
    assert result.exit_code == 0
    assert "no dead letters" in result.stdout


# -- send ---------------------------------------------------------------------------------


def test_send_email_with_a_bad_address_exits_2_naming_the_field(broker: Any) -> None:
    result = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
        "--to", "not-an-address", "--subject", "Hi", "--text", "x",
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "to.1" in result.stderr
    assert "not-an-address" in result.stderr
    assert result.stdout == ""
    assert broker.drain() == []


def test_send_email_prints_the_handle(broker: Any) -> None:
    result = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
        "--cc", "bob@example.org", "--subject", "Hi", "--html", "<p>x</p>", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    handle = json.loads(result.stdout)
    assert (handle["kind"], handle["recipients"], handle["chunks"]) == ("email", 2, 1)
    [(_, (chunk_id, payload), _)] = broker.drain()
    assert chunk_id == f"{handle['id']}.0"
    assert payload["cc"] == ["bob@example.org"]

    plain = invoke("send", "email", "--from", "shop@example.com", "--to", "c@example.org",
                   "--subject", "Hi", "--text", "x")  # fmt: skip
    assert plain.exit_code == 0
    assert len(plain.stdout.strip()) == 32  # just the id, for scripts


def test_send_email_attaches_files_read_at_the_call(broker: Any, tmp_path: Path) -> None:
    (tmp_path / "receipt.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "rows.csv").write_bytes(b"a,b\n")
    result = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
        "--subject", "Hi", "--text", "x", "--attach", str(tmp_path / "receipt.pdf"),
        "--attach", str(tmp_path / "rows.csv"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(_, (_, payload), _)] = broker.drain()
    assert payload["attachments"] == [
        {"filename": "receipt.pdf", "mimetype": "application/pdf", "fileblob": "JVBERi0xLjQ="},
        {"filename": "rows.csv", "mimetype": "text/csv", "fileblob": "YSxiCg=="},
    ]


def test_send_email_with_a_missing_attachment_names_it(broker: Any, tmp_path: Path) -> None:
    result = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
        "--subject", "Hi", "--text", "x", "--attach", str(tmp_path / "gone.pdf"),
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert f"attachments.0.path: no such file: {tmp_path / 'gone.pdf'}" in click.unstyle(
        result.stderr
    )
    assert broker.drain() == []


@pytest.fixture
def eleven_hours_ahead(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone that is not UTC (POSIX ``UTC-11``: 11 hours ahead, no summer)."""
    monkeypatch.setenv("TZ", "UTC-11")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("given", "due"),
    [
        ("+10m", lambda now: now + 600),
        ("+1h30m", lambda now: now + 5400),
        ("+2d", lambda now: now + 2 * 86400),
        ("2099-01-01T00:00:00+00:00", lambda now: 4070908800.0),
        ("2099-01-01T00:00Z", lambda now: 4070908800.0),
        ("2099-01-01T09:00", lambda now: 4070908800.0 - 2 * 3600),  # no offset: local time
    ],
)
@pytest.mark.usefixtures("eleven_hours_ahead")
def test_send_at_takes_an_iso_time_or_a_delay(
    broker: Any, runtime: Runtime, given: str, due: Any
) -> None:
    runtime.settings.retention_seconds = 100 * 365 * 86400  # room for 2099
    now = time.time()
    result = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "ann@example.org",
        "--subject", "Hi", "--text", "x", "--send-at", given, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert broker.drain() == []  # parked until then, not published
    record = runtime.store.batches.batch(json.loads(result.stdout)["id"])
    assert record is not None
    assert float(record["send_at"]) == pytest.approx(due(now), abs=5)


def test_send_at_that_is_no_time_is_a_usage_error(broker: Any) -> None:
    result = invoke(
        "send", "sms", "--to", "+61400000000", "--message", "hi", "--send-at", "tomorrow",
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "--send-at" in result.stderr
    assert "neither an ISO 8601 time" in result.stderr
    assert broker.drain() == []


def test_send_email_help_says_what_cc_bcc_attach_and_send_at_take() -> None:
    text = invoke("send", "email", "--help").stdout
    for option in ("--cc", "--bcc", "--attach", "--send-at"):
        assert option in text
    assert "Blind copy" in text
    assert "+10m" in text


def test_send_template_rejects_bad_json(broker: Any) -> None:
    result = invoke(
        "send", "template", "--from", "hi@example.com", "--to", "ann@example.org",
        "--template-id", "welcome-01", "--data", "{not json",
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "--data" in result.stderr
    assert broker.drain() == []


def test_send_template_queues(broker: Any) -> None:
    result = invoke(
        "send", "template", "--from", "hi@example.com", "--to", "ann@example.org",
        "--template-id", "welcome-01", "--data", '{"name": "Ann"}', "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [(name, (_, payload), _)] = broker.drain()
    assert name == "outbox.send_template"
    assert payload["template_data"] == {"name": "Ann"}


def test_send_sms_with_a_bad_number_exits_2(broker: Any) -> None:
    result = invoke("send", "sms", "--to", "0412 345 678", "--message", "hi")
    assert result.exit_code == EXIT_USAGE
    assert "to.0" in result.stderr
    assert broker.drain() == []


def test_send_mime_from_stdin(broker: Any) -> None:
    mime = "From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    result = CliRunner().invoke(main, ["send", "mime", "-", "--json"], input=mime)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "mime"
    assert [name for name, _, _ in broker.drain()] == ["outbox.send_mime"]


# -- failures every command shares --------------------------------------------------------


def test_unreachable_redis_exits_3_with_the_url() -> None:
    settings = Settings.model_validate({"OUTBOX_REDIS_URL": "redis://127.0.0.1:1/4"})
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    set_runtime(Runtime.from_settings(settings, redis_client=client))
    for args in (["status", "abc"], ["dead", "list"], ["dead", "replay", "--all"]):
        result = invoke(*args)
        assert result.exit_code == EXIT_UNREACHABLE, (args, result.output)
        assert "cannot reach Redis at redis://127.0.0.1:1/4 (OUTBOX_REDIS_URL)" in result.stderr


def test_demo_refuses_too_few_recipients() -> None:
    result = invoke("demo", "--recipients", "10")
    assert result.exit_code == EXIT_USAGE
    assert "--recipients" in result.stderr


def test_demo_quota_phase_must_leave_something_waiting() -> None:
    """400 recipients make a 71-member announcement: 71 left would throttle nothing."""
    from outbox.cli.demo.mix import announcement_size

    assert announcement_size(400) == 71
    too_many = invoke("demo", "--recipients", "400", "--quota", "71")
    assert too_many.exit_code == EXIT_USAGE
    assert "--quota" in too_many.stderr
    assert "fewer than 71" in too_many.stderr
    both = invoke("demo", "--quota", "10", "--no-quota")
    assert both.exit_code == EXIT_USAGE
    assert "exclude each other" in both.stderr


def test_demo_refuses_a_bad_burst() -> None:
    result = invoke("demo", "--burst-429", "lots")
    assert result.exit_code == EXIT_USAGE
    assert "--burst-429" in result.stderr


@pytest.mark.parametrize("burst", [0, 8, 30])
def test_demo_chunks_outlast_the_5xx_burst(burst: int) -> None:
    """One chunk alone in flight takes the whole burst; it must not die of it."""
    from outbox.cli.demo.options import DemoOptions, demo_settings

    attempts = int(demo_settings(DemoOptions(burst_5xx=burst))["OUTBOX_MAX_ATTEMPTS"])
    assert attempts >= burst + 8


def test_sandbox_refuses_a_bad_rate() -> None:
    result = invoke("sandbox", "--rate", "fast", "--port", "0")
    assert result.exit_code == EXIT_USAGE
    assert "invalid rate" in result.stderr


def test_sandbox_banner_names_the_key_format_it_accepts() -> None:
    """Digits are as good as letters in a key (``api-`` and 32 of either)."""
    from outbox.sandbox import SandboxConfig
    from outbox.sandbox.api import KEY_FORMAT
    from outbox.sandbox.command import banner

    line = banner(SandboxConfig(), "127.0.0.1", 8025)
    assert line.endswith("accepts any key of the form api- and 32 letters or digits")
    assert KEY_FORMAT.match("api-" + "0123456789" * 3 + "ab")
    given = banner(SandboxConfig(api_key="api-" + "7" * 32), "127.0.0.1", 8025)
    assert given.endswith("accepts the key given (--api-key)")
    assert "7" * 32 not in given


def test_webhooks_needs_a_secret_or_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    from outbox.core.settings import get_settings

    monkeypatch.delenv("OUTBOX_WEBHOOK_SECRET", raising=False)
    monkeypatch.chdir("/")  # no .env to read a secret from
    get_settings.cache_clear()
    try:
        result = invoke("webhooks", "--port", "0")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == EXIT_USAGE
    assert "OUTBOX_WEBHOOK_SECRET" in result.stderr


@pytest.mark.parametrize(
    ("url", "broker", "records"),
    [
        ("redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379/14"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
    ],
)
def test_demo_redis_url_is_broker_then_records(url: str, broker: str, records: str) -> None:
    assert split_redis_url(url) == (broker, records)


# -- recipients, replays of failed chunks, sending again -----------------------------------


def make_failed(
    rt: Runtime, chunk_id: str, code: str = "E_ApiResponseCodes.API_KEY_INVALID"
) -> None:
    error = {
        "type": "UnauthorizedError",
        "message": "bad key",
        "status_code": 401,
        "error_code": code,
    }
    rt.store.batches.finish(
        chunk_id,
        State.FAILED,
        limit=rt.send_limit,
        fields={"last_error": error},
        ledger_note="bad key",
    )


def test_status_of_an_unknown_id_as_json_is_json() -> None:
    for args in (["--json"], ["--recipients", "--json"]):
        result = invoke("status", "no-such-id", *args)
        assert result.exit_code == EXIT_FAILED
        assert json.loads(result.stdout) == {
            "error": "no record 'no-such-id' (unknown, or expired)",
            "id": "no-such-id",
        }
        assert "no record 'no-such-id'" in result.stderr


def test_every_failure_with_json_is_one_json_document(broker: Any) -> None:
    """``--json`` promises one JSON document on stdout, whatever went wrong."""
    bad = invoke(
        "send", "email", "--from", "shop@example.com", "--to", "not-an-address",
        "--subject", "Hi", "--text", "x", "--json",
    )  # fmt: skip
    assert bad.exit_code == EXIT_USAGE
    assert list(json.loads(bad.stdout)["fields"]) == ["to.0"]
    usage = invoke("dead", "replay", "--json")
    assert usage.exit_code == EXIT_USAGE
    assert "error" in json.loads(usage.stdout)
    unknown = invoke("status", "--json", "--no-such-option")
    assert unknown.exit_code == EXIT_USAGE
    assert "--no-such-option" in json.loads(unknown.stdout)["error"]
    assert json.loads(invoke("retry-failed", "nope", "--json").stdout)["id"] == "nope"


def test_unreachable_redis_with_json_is_json() -> None:
    settings = Settings.model_validate({"OUTBOX_REDIS_URL": "redis://127.0.0.1:1/4"})
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    set_runtime(Runtime.from_settings(settings, redis_client=client))
    result = invoke("status", "abc", "--json")
    assert result.exit_code == EXIT_UNREACHABLE
    assert json.loads(result.stdout)["error"].startswith("cannot reach Redis at")


def test_status_lists_recipients_and_their_fates(broker: Any, runtime: Runtime) -> None:
    runtime.store.suppressions.add("zed@example.org")
    handle = send_email(
        "shop@example.com",
        ["ann@example.org", "bob@example.org", "zed@example.org"],
        "Hi",
        text_body="x",
    )
    make_failed(runtime, f"{handle.id}.0")
    rows = json.loads(invoke("status", handle.id, "--recipients", "--json").stdout)
    fates = {r["recipient"]: r["state"] for r in rows}
    assert fates == {
        "ann@example.org": "failed",
        "bob@example.org": "failed",
        "zed@example.org": "suppressed",
    }
    only = json.loads(
        invoke("status", handle.id, "--recipients", "--state", "suppressed", "--json").stdout
    )
    assert [r["recipient"] for r in only] == ["zed@example.org"]
    text = invoke("status", handle.id).stdout
    assert "recipients by fate: 2 failed, 1 suppressed" in text


def test_a_send_whose_only_recipient_is_suppressed_says_so(broker: Any, runtime: Runtime) -> None:
    from outbox.send import SUPPRESSED

    runtime.store.suppressions.add("zed@example.org")
    handle = send_email("shop@example.com", ["Zed <ZED@example.org>"], "Hi", text_body="x")
    assert handle.chunks == 0  # nothing to send: no chunk, no task
    text = invoke("status", handle.id).stdout
    assert "failed" not in text.replace("0 failed", "")  # nothing failed: it was never sent
    assert f"{handle.id}  suppressed" in text
    assert "recipients 1: 0 accepted by the API, 0 failed, 1 refused before sending" in text
    assert "chunks 0: nothing to send, every recipient was refused before sending" in text
    [row] = [line for line in text.splitlines() if "ZED@example.org" in line]
    assert "suppressed" in row
    assert SUPPRESSED in row  # the reason the ledger keeps
    assert "finished -" not in text
    assert "delivery events" not in text


def test_a_send_with_some_recipients_suppressed_lists_them(broker: Any, runtime: Runtime) -> None:
    runtime.store.suppressions.add(*(f"z{i}@example.org" for i in range(12)))
    named = ["ann@example.org", *(f"z{i}@example.org" for i in range(12))]
    handle = send_email("shop@example.com", named, "Hi", text_body="x")
    text = invoke("status", handle.id).stdout
    assert f"{handle.id}  queued" in text
    assert "recipients 13: 0 accepted by the API, 0 failed, 12 refused before sending" in text
    assert "refused before sending (12)" in text
    assert f"and 2 more: outbox status {handle.id} --recipients --state suppressed" in text
    assert f"{handle.id}.0" in text  # the chunk that goes is shown as ever


def test_replay_takes_failed_chunks_by_error_code_never_sent_ones(
    broker: Any, runtime: Runtime
) -> None:
    first = send_email("shop@example.com", ["ann@example.org"], "Hi", text_body="x")
    second = send_email("shop@example.com", ["bob@example.org"], "Hi", text_body="x")
    third = send_email("shop@example.com", ["cat@example.org"], "Hi", text_body="x")
    broker.drain()
    make_failed(runtime, f"{first.id}.0")
    make_failed(runtime, f"{second.id}.0", code="E_ApiResponseCodes.NON_VALIDATING_IN_PAYLOAD")
    runtime.store.batches.finish(f"{third.id}.0", State.SENT, limit=runtime.send_limit)

    listed = json.loads(
        invoke("replay", "--error-code", "API_KEY_INVALID", "--list", "--json").stdout
    )
    assert [r["id"] for r in listed] == [f"{first.id}.0"]
    result = invoke("replay", "--error-code", "API_KEY_INVALID", "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)["replayed"]] == [f"{first.id}.0"]
    assert [args[0] for _, args, _ in broker.drain()] == [f"{first.id}.0"]

    sent = invoke("replay", f"{third.id}.0", "--json")
    assert sent.exit_code == EXIT_FAILED
    assert json.loads(sent.stdout)["skipped"][0]["reason"] == "not failed or dead (state sent)"
    assert broker.drain() == []


def test_retry_failed_sends_again_only_to_those_worth_it(broker: Any, runtime: Runtime) -> None:
    runtime.store.suppressions.add("zed@example.org")
    handle = send_email(
        "shop@example.com",
        [f"u{i}@example.org" for i in range(150)] + ["zed@example.org"],
        "Hi",
        text_body="x",
        cc=["boss@example.org"],
    )
    broker.drain()
    make_failed(runtime, f"{handle.id}.1")  # the second hundred failed
    runtime.store.batches.finish(f"{handle.id}.0", State.SENT, limit=runtime.send_limit)
    result = invoke("retry-failed", handle.id, "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["recipients"] == 50
    [(name, (_, payload), _)] = broker.drain()
    assert name == "outbox.send_email"
    assert payload["to"] == [f"u{i}@example.org" for i in range(100, 150)]
    assert "cc" not in payload  # boss@ was in the first chunk, which was sent
    nothing = invoke("retry-failed", again["id"])
    assert nothing.exit_code == EXIT_FAILED
    assert "nobody to try again" in nothing.stderr


def test_quota_shows_the_read_what_is_left_and_what_waits(runtime: Runtime) -> None:
    assert "has not been read yet" in invoke("quota").output
    account = runtime.store.account
    account.save_quota(
        {"cycle_start": "2026-11-01 00:00:00+00:00", "cycle_end": "2026-12-01 00:00:00+00:00"}
        | {"cycle_used": 9_990, "cycle_remaining": 10, "cycle_max": 10_000, "read_at": 0}
    )
    account.set_quota_left(10, until=runtime.store.now() + 3600)
    runtime.redis.zadd(keys.throttled(), {"a.0": 1, "b.0": 2})
    shown = invoke("quota").output
    assert "9990 used of 10000, 10 remaining" in shown
    cycle = f"cycle {when('2026-11-01 00:00:00+00:00')} to {when('2026-12-01 00:00:00+00:00')}"
    assert cycle in shown  # local time, as every other time shown
    assert "left for sending until the cycle ends: 10" in shown
    assert "2 chunk(s) throttled" in shown
    data = json.loads(invoke("quota", "--json").output)
    assert (data["left"], data["throttled"], data["quota"]["cycle_max"]) == (10, 2, 10_000)
