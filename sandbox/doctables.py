"""The tables of ``docs/sandbox.md`` that are generated from the code.

Between ``<!-- generated: NAME -->`` and ``<!-- /generated -->`` the document holds the
output of the generator NAME: ``options`` (the command line) or ``config`` (the fields of
``/_sandbox/config``). A unit test checks the document is up to date; to regenerate::

    python -m outbox.sandbox.doctables docs/sandbox.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from outbox.sandbox import command, knobs

__all__ = ["GENERATORS", "render"]

GENERATORS: dict[str, Callable[[], str]] = {
    "options": command.markdown_table,
    "config": knobs.markdown_table,
}
_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.DOTALL
)


def render(text: str) -> str:
    """``text`` with every generated block replaced by its generator's current output."""

    def fill(match: re.Match[str]) -> str:
        generate = GENERATORS[match["name"]]
        return f"{match[1]}{generate()}\n{match[4]}"

    return _BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    for name in argv or ["docs/sandbox.md"]:
        path = Path(name)
        path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
