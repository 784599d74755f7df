"""The configuration as documented is the configuration the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from outbox.core.settings import Settings
from support.docblocks import render

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Where an operator reads about settings: they may name only settings that exist.
DOCUMENTS = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy" / "README.md",
    *sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file() and "grafana" not in p.parts),
]
#: The product's code, which may read no setting but through :class:`Settings`.
CODE = [
    path
    for package in ("worker", "producers", "cli", "sandbox")
    for path in sorted((ROOT / package).rglob("*.py"))
]
NAME = re.compile(r"\b(?:OUTBOX|SMTP2GO)_[A-Z0-9_]*[A-Z0-9]\b")
#: Names of that shape that are not settings of outbox.
NOT_SETTINGS = {
    "SMTP2GO_API",  # prose: "the SMTP2GO API"
    "OUTBOX_ID_HEADER",  # a constant: the header carrying the chunk id
    "OUTBOX_QUEUES",  # the systemd units' own: the queues they pass to `celery worker -Q`
    "OUTBOX_IMAGE",  # the compose file's: which image its services run
}


def _settings() -> set[str]:
    return {str(info.validation_alias) for info in Settings.model_fields.values()}


def test_the_readme_table_is_generated_from_the_settings() -> None:
    """Regenerate with ``python -m support.docblocks``."""
    text = README.read_text()
    assert "<!-- generated: settings -->" in text
    assert render(text) == text, "README.md is out of date: run python -m support.docblocks"
    for name in _settings():
        assert f"| `{name}` |" in text, name


def test_every_setting_has_a_description() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, name
        assert info.validation_alias, name


def test_documents_name_only_settings_that_exist() -> None:
    known = _settings() | NOT_SETTINGS
    for path in DOCUMENTS:
        unknown = set(NAME.findall(path.read_text(errors="replace"))) - known
        assert not unknown, f"{path.relative_to(ROOT)} names {sorted(unknown)}"


def test_the_code_reads_no_setting_the_settings_object_does_not_have() -> None:
    known = _settings() | NOT_SETTINGS
    for path in CODE:
        unknown = set(NAME.findall(path.read_text())) - known
        assert not unknown, f"{path.relative_to(ROOT)} names {sorted(unknown)}"
