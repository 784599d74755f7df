"""The folders draw the flow: core <- producers (the app's side), core <- worker (Celery's
side), with the command line and the sandbox beside them.

Every import of the product's source is read (``ast``, so imports inside functions and
under ``TYPE_CHECKING`` count too) and each module is placed in its layer by its folder:

* ``core/`` (``outbox.core``) imports only ``outbox.core``. Both sides stand on it, so
  it can know neither.
* ``worker/`` (``outbox.worker``) imports ``outbox.core`` and itself, never a producer
  module (``outbox``, ``outbox.send``, ``outbox.errors``...), the command line or the
  sandbox: a worker runs without the app's side.
* ``producers/`` (the ``outbox`` package's own modules) import ``outbox.core`` and
  themselves. Of the worker they use only its seams, :data:`WORKER_SEAMS`: the
  process's runtime (the objects tests and the demo install), the one way a task
  reaches the broker, and the one way a request that is not a send reaches SMTP2GO
  (``erase`` lifts the address there where a key is at hand). Everything else a
  producer needs of the worker's vocabulary (states, kinds, queues, the store, the
  models) comes from ``outbox.core``.
  The in-process stack (:data:`WHOLE_STACK`: the ``outbox_stack`` fixture and the pytest
  plugin) runs a worker, the sandbox and the demo's stack in the test's process, so it
  may import any of them.
* ``sandbox/`` (``outbox.sandbox``) imports only itself: an emulator of the service
  that shares no code with the client it is checked against.
* ``cli/`` (``outbox.cli``) drives everything and may import anything.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: folder -> import name (checked against pyproject's package-dir below)
FOLDERS = {
    "core": "outbox.core",
    "worker": "outbox.worker",
    "producers": "outbox",
    "cli": "outbox.cli",
    "sandbox": "outbox.sandbox",
}
#: Which layers each layer may import.
ALLOWED = {
    "core": {"core"},
    "worker": {"core", "worker"},
    "producers": {"core", "producers"},
    "sandbox": {"sandbox"},
    "cli": set(FOLDERS),
}
#: The worker modules a producer may import: the runtime, publishing and account calls.
WORKER_SEAMS = {"outbox.worker.runtime", "outbox.worker.publish", "outbox.worker.account_api"}
#: Producer modules that assemble the whole stack in one process.
WHOLE_STACK = {"outbox.stack", "outbox.testing"}


def layer_of(module: str) -> str | None:
    """The layer an ``outbox`` module belongs to; ``None`` for anything else."""
    if module != "outbox" and not module.startswith("outbox."):
        return None
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in {"core", "worker", "cli", "sandbox"}:
        return parts[1]
    return "producers"


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join([FOLDERS[folder], *rest])


def imports_of(module: str, source: str, *, package: bool = False) -> set[str]:
    """Every ``outbox`` module (or ``module.name``) the source imports."""
    here = module if package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            # `from outbox.core import tracing` imports the module outbox.core.tracing
            found |= {f"{name}.{alias.name}" for alias in node.names} | {name}
    return {name for name in found if layer_of(name) is not None}


def violations(module: str, imported: set[str]) -> list[str]:
    """What ``module`` may not import, by the rules above."""
    layer = layer_of(module)
    assert layer is not None
    bad = []
    for name in sorted(imported):
        target = layer_of(name)
        if module in WHOLE_STACK or target in ALLOWED[layer]:
            continue
        seam = any(name == s or name.startswith(s + ".") for s in WORKER_SEAMS)
        if layer == "producers" and target == "worker" and seam:
            continue
        bad.append(name)
    return bad


def _sources() -> list[tuple[str, str, bool]]:
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found.append((_module_name(path), path.read_text("utf-8"), path.name == "__init__.py"))
    return found


def test_the_folders_are_the_import_names() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    mapped = config["tool"]["setuptools"]["package-dir"]
    assert mapped == {name: folder for folder, name in FOLDERS.items()}


def test_every_import_follows_the_layers() -> None:
    broken = {}
    for module, source, package in _sources():
        bad = violations(module, imports_of(module, source, package=package))
        if bad:
            broken[module] = bad
    assert not broken, f"imports against the layering (see this test's docstring): {broken}"


def test_the_rules_catch_each_kind_of_crossing() -> None:
    """Each rule, shown failing on an import it forbids."""

    def bad(module: str, source: str) -> list[str]:
        return violations(module, imports_of(module, source))

    assert bad("outbox.core.store.batches", "from outbox.worker.policy import decide")
    assert bad("outbox.core.views", "from outbox import send_email")
    assert bad("outbox.core.kinds", "from outbox.cli.output import columns")
    assert bad("outbox.worker.delivery", "from outbox.errors import OutboxError")
    assert bad("outbox.worker.beat", "import outbox.handle")
    assert bad("outbox.worker.beat", "from outbox.sandbox import SandboxConfig")
    assert bad("outbox.send", "from outbox.worker.delivery import Attempt")
    assert bad("outbox.handle", "def f():\n    from outbox.worker.reconcile import reconcile")
    assert bad("outbox.sandbox.api", "from outbox.core.smtp2go.models import EmailSend")
    # and what they allow
    assert not bad("outbox.enqueue", "from outbox.worker.publish import Task, publish")
    assert not bad("outbox.send", "from outbox.worker.runtime import get_runtime")
    assert not bad("outbox.stack", "from outbox.worker.celery_app import app")
    assert not bad("outbox.cli.letters", "from outbox.worker.publish import chunk_task")
    assert not bad("outbox.worker.tasks", "from outbox.core import tracing")
