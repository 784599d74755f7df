"""Attachments and inlines as an app gives them: bytes, paths, base64 or a URL, each
refused naming its own field, and a file too large for the request named with its size."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from outbox import ValidationError, send_email, send_template
from outbox.core.store import keys
from outbox.worker.runtime import Runtime

pytestmark = pytest.mark.usefixtures("runtime")

PDF = b"%PDF-1.4 a receipt"


def _email(**files: Any) -> Any:
    return send_email("shop@example.com", ["ann@example.org"], "Receipt", text_body="x", **files)


def _refused(runtime: Runtime, memory_broker: Any, **files: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        _email(**files)
    assert memory_broker.drain() == []
    assert runtime.redis.keys(keys.PREFIX + "*") == []
    return info.value.errors


def test_bytes_travel_as_base64_with_the_mimetype_guessed(memory_broker: Any) -> None:
    _email(
        attachments=[{"filename": "receipt.pdf", "content": PDF}],
        inlines=[{"filename": "logo.png", "content": b"\x89PNG", "cid": "logo"}],
    )
    [(_, (_, payload), _)] = memory_broker.drain()
    assert payload["attachments"] == [
        {
            "filename": "receipt.pdf",
            "mimetype": "application/pdf",
            "fileblob": base64.b64encode(PDF).decode(),
        }
    ]
    assert payload["inlines"] == [
        {
            "filename": "logo",
            "mimetype": "image/png",
            "fileblob": base64.b64encode(b"\x89PNG").decode(),
        }
    ]


def test_a_path_is_read_at_the_call_and_named_after_its_file(
    memory_broker: Any, tmp_path: Path
) -> None:
    (tmp_path / "receipt.pdf").write_bytes(PDF)
    (tmp_path / "notes").write_bytes(b"plain")
    send_template(
        "shop@example.com",
        "ann@example.org",
        "welcome-1",
        {},
        attachments=[
            tmp_path / "receipt.pdf",
            {"path": str(tmp_path / "notes"), "filename": "notes.txt"},
            {"path": tmp_path / "notes", "mimetype": "text/csv"},
        ],
    )
    (tmp_path / "receipt.pdf").unlink()  # the worker never reads the app's disk
    [(_, (_, payload), _)] = memory_broker.drain()
    plain = base64.b64encode(b"plain").decode()
    assert payload["attachments"] == [
        {
            "filename": "receipt.pdf",
            "mimetype": "application/pdf",
            "fileblob": base64.b64encode(PDF).decode(),
        },
        {"filename": "notes.txt", "mimetype": "text/plain", "fileblob": plain},
        {"filename": "notes", "mimetype": "text/csv", "fileblob": plain},
    ]


def test_an_inline_from_a_path_is_named_by_its_cid(memory_broker: Any, tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    _email(inlines=[{"cid": "logo", "path": tmp_path / "logo.png"}])
    [(_, (_, payload), _)] = memory_broker.drain()
    blob = base64.b64encode(b"\x89PNG").decode()
    assert payload["inlines"] == [{"filename": "logo", "mimetype": "image/png", "fileblob": blob}]


def test_a_path_that_cannot_be_read_is_named(
    runtime: Runtime, memory_broker: Any, tmp_path: Path
) -> None:
    (tmp_path / "ok.pdf").write_bytes(PDF)
    errors = _refused(
        runtime,
        memory_broker,
        attachments=[tmp_path / "ok.pdf", tmp_path / "missing.pdf", {"path": tmp_path}],
        inlines=[{"path": tmp_path / "ok.pdf", "content": PDF}],
    )
    assert errors == {
        "attachments.1.path": f"no such file: {tmp_path / 'missing.pdf'}",
        "attachments.2.path": f"is a directory, not a file: {tmp_path}",
        "inlines.0.path": "give path or content, not both",
    }


def test_an_unreadable_path_is_named(
    runtime: Runtime, memory_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(PDF)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # as for a file of another user
    errors = _refused(runtime, memory_broker, attachments=[{"path": secret}])
    assert errors == {"attachments.0.path": f"cannot read {secret}: Permission denied"}


@pytest.mark.parametrize(
    ("attachment", "field", "says"),
    [
        ({"filename": "a.txt", "content": "not base64"}, "attachments.0.content", "bytes"),
        ({"filename": "a.txt", "fileblob": b"raw bytes!"}, "attachments.0.fileblob", "base64"),
        ({"filename": "a.txt", "body": b"x"}, "attachments.0.body", "content (bytes) or path"),
        ("receipt.pdf", "attachments.0", "Path(...) or {'path': ...}"),
    ],
)
def test_a_bad_file_is_named_with_what_is_accepted(
    runtime: Runtime, memory_broker: Any, attachment: Any, field: str, says: str
) -> None:
    errors = _refused(runtime, memory_broker, attachments=[attachment])
    assert list(errors) == [field]
    assert says in errors[field]


def test_a_file_too_large_is_named_in_megabytes(
    runtime: Runtime, memory_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a person counts it (on disk) and as it is sent (base64); a file that alone is
    over is refused before it is read."""
    huge = tmp_path / "video.mp4"
    with huge.open("wb") as out:
        out.truncate(60_000_000)  # sparse: nothing is written
    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
        errors = _refused(runtime, memory_broker, attachments=[{"path": huge}])
    assert errors == {
        "attachments.0": "video.mp4 is 60.0 MB (80.0 MB base64-encoded, as it is sent): the "
        "request would be 80.0 MB, over the 50.0 MB SMTP2GO takes for /email/send; with the "
        "rest of the message this file can be at most 37.4 MB"
    }
    twenty = tmp_path / "scan.pdf"
    twenty.write_bytes(b"\0" * 20_000_000)
    errors = _refused(runtime, memory_broker, attachments=[twenty, twenty])
    assert list(errors) == ["attachments.1"]
    assert errors["attachments.1"].startswith(
        "scan.pdf is 20.0 MB (26.7 MB base64-encoded, as it is sent): the request would be "
        "53.3 MB, over the 50.0 MB"
    )
