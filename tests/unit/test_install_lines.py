"""Every install line in the docs, examples and messages names this project's
distribution (``smtp2go-outbox``) or a checkout path, never the unrelated ``outbox``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "smtp2go-outbox"
#: ``pip install`` followed, on the same line, by the bare name (with or without extras).
_WRONG = re.compile(r"pip install[^\n]*?(?<![\w./-])['\"]?outbox(?=[\s\['\"]|$)")
#: An extra spelled on the bare name, as in ``outbox[metrics]``.
_BARE_EXTRA = re.compile(r"(?<![\w./-])outbox\[")


def _files() -> list[Path]:
    found = [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("deploy/**/*")]
    for folder in ("examples", "producers", "worker", "cli", "sandbox", "bench"):
        found += ROOT.glob(f"{folder}/**/*.py")
    return [p for p in found if p.is_file()]


def test_the_distribution_has_its_own_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    from outbox.cli.main import DISTRIBUTION as named

    assert named == DISTRIBUTION


def test_no_install_line_names_the_unrelated_package() -> None:
    bad = []
    for path in _files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _WRONG.search(line) or _BARE_EXTRA.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "install lines naming `outbox`:\n" + "\n".join(bad)


def test_the_check_finds_what_it_looks_for() -> None:
    assert _WRONG.search("pip install outbox flask")
    assert _WRONG.search("pip install 'outbox[metrics]'")
    assert not _WRONG.search("pip install smtp2go-outbox flask")
    assert not _WRONG.search("pip install /path/to/outbox")
    assert _BARE_EXTRA.search("install `outbox[django]`")
    assert not _BARE_EXTRA.search("install `smtp2go-outbox[django]`")
