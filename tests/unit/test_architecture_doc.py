"""``docs/architecture.md`` names every module of the product, and only modules that exist.

Its module table has one row per Python file under ``core/``, ``worker/``, ``producers/``,
``cli/``, ``sandbox/`` and ``support/``, plus ``celeryconfig.py``, and one row for the Lua scripts'
folder. A module added without a row, or a row left behind by a module that moved, fails
here; so does any other file the document names that is not there.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "architecture.md"
PACKAGES = ("core", "worker", "producers", "cli", "sandbox", "support")
LUA = "core/store/lua/"
_ROW = re.compile(r"^\| `(?P<path>[^`]+)` \| (?P<role>.+) \|$")
#: A file the document names, in prose or in the drawing: a path, a path within a package
#: (``store/limits.py``), or a name alone (``delivery.py``, ``claim.lua``); a test may
#: follow (``::test_name``).
_NAMED = re.compile(r"(?<![\w./-])([\w/-]+\.(?:py|lua|md))(?:::(\w+))?")
#: Where a name that is not a path from the root is looked for.
_BASES = ("", "core/", "worker/", "producers/", "core/store/", "core/smtp2go/", LUA)


def _product_modules() -> set[str]:
    found = {"celeryconfig.py"}
    for package in PACKAGES:
        found |= {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
    return found


def _rows() -> list[tuple[str, str]]:
    text = DOCUMENT.read_text()
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            rows.append((match["path"], match["role"]))
        elif line.startswith("| `"):
            raise AssertionError(f"a module row the test cannot read: {line!r}")
    return rows


def test_every_product_module_has_exactly_one_row() -> None:
    listed = [path for path, _ in _rows() if path != LUA]
    assert len(listed) == len(set(listed)), "a module has two rows"
    missing = _product_modules() - set(listed)
    assert not missing, f"docs/architecture.md has no row for {sorted(missing)}"


def test_every_row_names_a_file_that_exists() -> None:
    for path, role in _rows():
        assert role.strip(), f"{path} has no role"
        target = ROOT / path
        if path.endswith("/"):
            assert target.is_dir(), f"docs/architecture.md names a folder that is gone: {path}"
        else:
            assert target.is_file(), f"docs/architecture.md names a file that is gone: {path}"
    assert not {path for path, _ in _rows() if path != LUA} - _product_modules()


def test_the_lua_row_names_every_script_and_only_scripts() -> None:
    rows = dict(_rows())
    assert LUA in rows, "docs/architecture.md has no row for the Lua scripts"
    named = {name.removesuffix(".lua") for name in re.findall(r"`([\w.]+)`", rows[LUA])}
    scripts = {p.stem for p in (ROOT / LUA).glob("*.lua")}
    assert named == scripts, f"missing {sorted(scripts - named)}, gone {sorted(named - scripts)}"


def test_every_file_the_document_names_exists() -> None:
    for name, function in _NAMED.findall(DOCUMENT.read_text()):
        found = [ROOT / base / name for base in _BASES if (ROOT / base / name).is_file()]
        assert found, f"docs/architecture.md names {name}, which is not there"
        if function:
            assert f"def {function}(" in found[0].read_text(), f"{name} has no {function}"
