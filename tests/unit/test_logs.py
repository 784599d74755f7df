"""The secrets filter: keys and registered secrets never reach a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from outbox.worker import logs
from outbox.worker.logs import SecretsFilter, install_secret_filter

KEY = "api-" + "A1b2C3d4" * 4
WEBHOOK_SECRET = "hook-secret-value"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing to a string through a filtered handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretsFilter([WEBHOOK_SECRET]))
    log = logging.getLogger("test.logs.private")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, stream
    log.removeHandler(handler)


def test_key_in_message(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.info(f"calling with {KEY} now")
    assert KEY not in out.getvalue()
    assert "calling with api-*** now" in out.getvalue()


def test_key_in_args(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.warning("headers=%s count=%d", {"X-Smtp2go-Api-Key": KEY}, 3)
    text = out.getvalue()
    assert KEY not in text
    assert "api-***" in text
    assert "count=3" in text


def test_key_in_mapping_args(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.error("key %(key)s", {"key": KEY})
    assert KEY not in out.getvalue()


def test_registered_secret(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    log.info("Authorization: Bearer %s", WEBHOOK_SECRET)
    assert WEBHOOK_SECRET not in out.getvalue()
    assert "Bearer ***" in out.getvalue()


def test_exception_text(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logger
    try:
        raise RuntimeError(f"refused key {KEY} and {WEBHOOK_SECRET}")
    except RuntimeError:
        log.exception("request failed")
    text = out.getvalue()
    assert "Traceback" in text
    assert "RuntimeError: refused key api-*** and ***" in text
    assert KEY not in text
    assert WEBHOOK_SECRET not in text


def test_clean_records_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%d", (5,), None)
    assert SecretsFilter().filter(record)
    assert (record.msg, record.args) == ("n=%d", (5,))


def test_short_secrets_ignored() -> None:
    flt = SecretsFilter(["", "ab"])
    assert flt.redact("abc ab") == "abc ab"


def test_install_on_root(caplog: pytest.LogCaptureFixture) -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        install_secret_filter("root-level-secret")
        install_secret_filter()  # idempotent: no second filter
        assert root.filters.count(logs._FILTER) == 1
        assert handler.filters.count(logs._FILTER) == 1
        logging.getLogger("some.child").warning("secret root-level-secret and %s", KEY)
        root.warning("direct %s", KEY)
        text = stream.getvalue()
        assert "root-level-secret" not in text
        assert KEY not in text
        assert "secret *** and api-***" in text
    finally:
        root.removeHandler(handler)
        for target in (root, *root.handlers):
            target.removeFilter(logs._FILTER)
