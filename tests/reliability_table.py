"""The README's reliability table, generated from the fault tests' docstrings.

Each fault test says in its docstring what it breaks and what it checks::

    Fault: a worker killed with SIGKILL mid-batch
    Outcome: nothing lost, nothing sent twice ...

(continuation lines indented). This module reads them without importing the tests
(``ast``) and prints the Markdown table; ``tests/unit/test_reliability_table.py`` fails
when the README's copy differs.

    python -m tests.reliability_table            # print the table
    python -m tests.reliability_table --check    # exit 1 if README.md differs
    python -m tests.reliability_table --write    # rewrite the table in README.md
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START = "<!-- reliability-table:start (python -m tests.reliability_table --write) -->"
END = "<!-- reliability-table:end -->"
#: The modules that carry rows, in the table's order.
SOURCES = (
    "tests/integration/test_faults.py",
    "tests/integration/test_faults_redis.py",
    "tests/integration/test_faults_webhooks.py",
    "tests/integration/test_faults_input.py",
    "tests/integration/test_control.py",
    "tests/property/test_producers.py",
    "tests/property/test_webhooks.py",
    "tests/integration/test_faults_security.py",
    "tests/unit/test_security.py",
)
_FIELD = re.compile(r"^(Fault|Outcome):\s*(.*)$")


@dataclass(frozen=True)
class Row:
    fault: str
    outcome: str
    test: str


def _fields(doc: str) -> dict[str, str]:
    """``Fault:`` and ``Outcome:`` of a docstring, each joined onto one line."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in doc.splitlines():
        match = _FIELD.match(line.strip())
        if match:
            current = found.setdefault(match[1], [])
            current.append(match[2])
        elif current is not None and line.strip() and line[:1].isspace():
            current.append(line.strip())
        else:
            current = None
    return {name: " ".join(parts) for name, parts in found.items()}


def rows(root: Path = ROOT) -> list[Row]:
    out: list[Row] = []
    for source in SOURCES:
        path = root / source
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            fields = _fields(ast.get_docstring(node, clean=False) or "")
            if "Fault" in fields and "Outcome" in fields:
                where = path.relative_to(root / "tests").as_posix()
                out.append(Row(fields["Fault"], fields["Outcome"], f"`{where}::{node.name}`"))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(root: Path = ROOT) -> str:
    lines = ["| fault | what happens (checked by the test) | test |", "|---|---|---|"]
    lines += [f"| {_cell(r.fault)} | {_cell(r.outcome)} | {r.test} |" for r in rows(root)]
    return "\n".join(lines) + "\n"


def readme_table(text: str) -> str | None:
    """The table between the markers in the README, or ``None`` without markers."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability_table")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md differs")
    mode.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    generated = table()
    if not (args.check or args.write):
        sys.stdout.write(generated)
        return 0
    text = README.read_text(encoding="utf-8")
    current = readme_table(text)
    if current is None:
        print(f"README.md has no {START!r} ... {END!r} markers", file=sys.stderr)
        return 1
    if args.check:
        if current != generated:
            print("README.md's reliability table is out of date: run --write", file=sys.stderr)
            return 1
        return 0
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    README.write_text(f"{before}{START}\n{generated}{END}{after}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
