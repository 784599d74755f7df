"""The sandbox's documents agree with its code and its tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from outbox.sandbox import SandboxConfig
from outbox.sandbox.command import sandbox
from outbox.sandbox.knobs import KNOBS, config_view
from outbox.sandbox.state import SandboxState
from support.docblocks import render

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DOC = ROOT / "docs" / "sandbox.md"
FIDELITY_DOC = ROOT / "docs" / "smtp2go-fidelity.md"


def test_generated_tables_are_up_to_date() -> None:
    """Regenerate with ``python -m support.docblocks``."""
    text = SANDBOX_DOC.read_text()
    assert text.count("<!-- generated: ") == 2
    assert render(text) == text, "docs/sandbox.md is out of date: run python -m support.docblocks"


def test_every_config_field_and_option_is_documented() -> None:
    text = SANDBOX_DOC.read_text()
    view = config_view(SandboxState(SandboxConfig()))
    assert set(view) == {knob.name for knob in KNOBS} | {"api_key_fixed"}
    for name in view:
        assert f"`{name}`" in text, name
    for param in sandbox.params:
        assert f"`{max(param.opts, key=len)}`" in text or param.name == "help", param.name


def test_every_knob_with_an_option_has_that_option() -> None:
    options = {opt for param in sandbox.params for opt in param.opts}
    for knob in KNOBS:
        assert knob.option is None or knob.option in options, knob.name


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_test_the_fidelity_table_cites_exists() -> None:
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", FIDELITY_DOC.read_text())
    assert len(cited) > 40
    for file, name in cited:
        path = ROOT / file
        assert path.exists(), file
        assert name in _test_names(path), f"{file}::{name}"


def test_the_control_endpoints_are_documented() -> None:
    text = SANDBOX_DOC.read_text()
    for endpoint in ("config", "messages", "stats", "reset", "webhooks", "sms/inbound", "events"):
        assert f"/_sandbox/{endpoint}" in text, endpoint
    for needed in ("X-Smtp2go-Api-Key", "api_key", "template/add", "auth_header_type"):
        assert needed in text, needed
