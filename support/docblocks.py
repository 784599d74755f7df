"""Tables in the documents that are generated from the code, kept in one place.

Between ``<!-- generated: NAME -->`` and ``<!-- /generated -->`` a document holds the
output of the generator NAME: ``settings`` (the configuration, in the README), ``options``
(the sandbox's command line) and ``config`` (the fields of ``/_sandbox/config``, both in
``docs/sandbox.md``). Unit tests check the documents are up to date; to regenerate::

    python -m support.docblocks README.md docs/sandbox.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from outbox.core import settings
from outbox.sandbox import command, knobs

__all__ = ["DOCUMENTS", "GENERATORS", "render"]

GENERATORS: dict[str, Callable[[], str]] = {
    "settings": settings.markdown_table,
    "options": command.markdown_table,
    "config": knobs.markdown_table,
}
#: The documents that hold generated tables, from the repository's root.
DOCUMENTS = ("README.md", "docs/sandbox.md")
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
    root = Path(__file__).resolve().parent.parent
    for name in argv or DOCUMENTS:
        path = Path(name) if argv else root / name
        path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
