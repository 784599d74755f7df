"""The README's reliability table is the one the fault tests' docstrings generate."""

from __future__ import annotations

import ast

from tests.reliability_table import (
    README,
    ROOT,
    SOURCES,
    _cell,
    _fields,
    readme_table,
    rows,
    table,
)


def test_readme_table_matches_the_fault_tests() -> None:
    current = readme_table(README.read_text(encoding="utf-8"))
    assert current is not None, "README.md lost its reliability-table markers"
    assert current == table(), "run: python -m tests.reliability_table --write"


def test_every_fault_test_has_a_row() -> None:
    """A new test in a ``test_faults*.py`` module needs its ``Fault:``/``Outcome:`` lines."""
    listed = {r.test.strip("`") for r in rows()}
    for path in sorted((ROOT / "tests" / "integration").glob("test_faults*.py")):
        assert path.relative_to(ROOT).as_posix() in SOURCES, path.name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                assert f"integration/{path.name}::{node.name}" in listed, node.name


def test_fields_join_continuation_lines() -> None:
    doc = """Summary.

    Fault: a thing
        breaks
    Outcome: it is
        handled | well

    Not part of it.
    """
    assert _fields(doc) == {"Fault": "a thing breaks", "Outcome": "it is handled | well"}
    assert _cell("handled | well") == "handled \\| well"
