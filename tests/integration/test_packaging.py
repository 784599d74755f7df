"""The installed distribution: one import name, and nothing an application's own files
can shadow.

The wheel and an editable install are each put into a fresh virtual environment (its
third-party packages borrowed from the test run's own, through a ``.pth`` file, so no
download is needed) and run from a directory that holds an application's own
``worker.py``, ``worker/`` and ``celeryconfig.py`` (pickle, another broker, no
``acks_late``): a producer there enqueues, a ``celery -A outbox.worker`` worker there
delivers, and both use outbox's own settings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from support.procs import ROOT, running, wait_until
from tests.conftest import Sandbox

pytestmark = pytest.mark.integration

#: What an application that runs RQ, or followed Celery's tutorial, may well have.
APP_CELERYCONFIG = """\
broker_url = "amqp://guest@127.0.0.1:1//"
task_serializer = "pickle"
accept_content = ["pickle"]
task_acks_late = False
task_default_queue = "celery"
"""
#: What ``from outbox import ...`` must offer (DESIGN's public contract).
PUBLIC = {
    "send_email", "send_template", "send_mime", "send_sms", "status", "ValidationError",
    "OutboxError",
}  # fmt: skip
APP_WORKER_MODULE = "raise ImportError('the application\\'s own worker module was imported')\n"


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain copy of the project, as a tool that copies a tree makes one (links
    followed), so builds leave the checkout untouched."""
    copy = tmp_path_factory.mktemp("source") / "outbox"
    skip = shutil.ignore_patterns(".git", ".ci", ".venv", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, copy, ignore=skip)
    return copy


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, source)
    (found,) = out.glob("smtp2go_outbox-*.whl")
    return found


def _pip(*args: str | Path) -> None:
    _run(sys.executable, "-m", "pip", *args)


def test_the_wheel_installs_one_top_level_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        settings = archive.read("outbox/worker/celeryconfig.py").decode()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"outbox"}
    assert not any(name.startswith(("outbox/bench", "outbox/tests")) for name in names)
    # The settings file itself, not a link to a file the wheel does not carry.
    assert "task_acks_late = True" in settings
    # every package of every folder the distribution is built from
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    for name, folder in config["tool"]["setuptools"]["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{name.replace('.', '/')}/{inside}" in names, f"the wheel lacks {init}"
    # the store's scripts, which are data, not modules
    lua = sorted(p.name for p in (ROOT / "core" / "store" / "lua").glob("*.lua"))
    assert lua
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".lua")) == lua
    assert all(n.startswith("outbox/core/store/lua/") for n in names if n.endswith(".lua"))
    assert "outbox/py.typed" in names


def _venv(path: Path) -> Path:
    """A fresh environment whose third-party packages are this run's (via a .pth file)."""
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    (site / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


@pytest.fixture(scope="module", params=["wheel", "editable"])
def installed(
    request: pytest.FixtureRequest,
    wheel: Path,
    source: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The python of a fresh environment with outbox installed as a wheel, or editable
    (the default, import-hook mode setuptools gives ``pip install -e``)."""
    python = _venv(tmp_path_factory.mktemp(f"venv-{request.param}"))
    target = [wheel] if request.param == "wheel" else ["-e", source]
    _pip("--python", python, "install", "--no-deps", "--no-build-isolation", "-q", *target)
    return python


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """An application directory with its own worker module, worker package and settings."""
    app = tmp_path / "app"
    (app / "worker").mkdir(parents=True)
    (app / "worker.py").write_text(APP_WORKER_MODULE)
    (app / "worker" / "__init__.py").write_text(APP_WORKER_MODULE)
    (app / "celeryconfig.py").write_text(APP_CELERYCONFIG)
    (app / "producers.py").write_text(APP_WORKER_MODULE)
    return app


def test_outbox_imports_its_own_names_beside_the_apps(
    installed: Path, app_dir: Path, redis_db: tuple[str, str]
) -> None:
    script = f"NAMES = {sorted(PUBLIC)!r}\n" + textwrap.dedent(
        """
        import json, sys
        import outbox
        from outbox.worker import app
        conf = app.conf
        print(json.dumps({
            "file": outbox.__file__,
            "api": sorted(n for n in NAMES if hasattr(outbox, n)),
            "serializer": conf.task_serializer, "accept": list(conf.accept_content),
            "acks_late": conf.task_acks_late, "broker": conf.broker_url,
            "queue": conf.task_default_queue,
            "shadowed": [m for m in ("worker", "producers", "celeryconfig") if m in sys.modules],
        }))
        """
    )
    seen = json.loads(_run(installed, "-c", script, cwd=app_dir, env=_env(redis_db)))
    assert seen["api"] == sorted(
        [
            "send_email",
            "send_template",
            "send_mime",
            "send_sms",
            "status",
            "ValidationError",
            "OutboxError",
        ]
    )
    assert seen["serializer"] == "json"
    assert seen["accept"] == ["json"]
    assert seen["acks_late"] is True
    assert seen["broker"] == redis_db[0]
    assert seen["queue"] == "email"
    assert seen["shadowed"] == []


def _env(redis_db: tuple[str, str], **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        {"CELERY_BROKER_URL": redis_db[0], "OUTBOX_REDIS_URL": redis_db[1], "PYTHONPATH": ""},
        **extra,
    )
    return env


def test_a_producer_and_a_worker_in_the_apps_directory_deliver(
    installed: Path, app_dir: Path, redis_db: tuple[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    env = _env(
        redis_db,
        SMTP2GO_BASE_URL=sandbox.base_url,
        SMTP2GO_API_KEY=sandbox.api_key,
        OUTBOX_RATE_LIMIT="100/s",
    )
    produce = textwrap.dedent(
        """
        from outbox import send_email
        handle = send_email("shop@example.com", ["ann@example.org"], "Hello", text_body="hi")
        print(handle.id)
        """
    )
    handle_id = _run(installed, "-c", produce, cwd=app_dir, env=env).strip()
    # ``python -m celery``: packages borrowed through a .pth file bring no console scripts.
    worker = [str(installed), "-m", "celery", "-A", "outbox.worker", "worker", "-c", "2"]
    worker += ["-l", "info"]
    worker += ["--without-gossip", "--without-mingle", "-Q", "email"]
    log = tmp_path / "worker.log"
    check = textwrap.dedent(
        f"""
        from outbox import status
        print(status({handle_id!r}).state)
        """
    )
    with running(worker, env=env, log=log, cwd=app_dir):
        wait_until(
            lambda: _run(installed, "-c", check, cwd=app_dir, env=env).strip() == "sent",
            timeout=60,
            what="the send to be recorded sent",
        )
    assert [m["recipients"] for m in sandbox.messages()] == [["ann@example.org"]]
    text = log.read_text()
    assert "ImportError" not in text
    assert "pickle" not in text


#: Third-party distributions that only an extra may bring into a web app.
HEAVY = {
    "fakeredis", "lupa", "rich", "flower", "tornado", "starlette", "uvicorn",
    "python-multipart", "pystache", "django", "prometheus-client",
}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "brings"),
    [
        ("", set()),
        ("demo", {"fakeredis", "lupa", "rich", "starlette", "uvicorn", "pystache"}),
        ("flower", {"flower", "tornado", "prometheus-client"}),  # Flower's own metrics
        ("webhooks", {"starlette", "uvicorn", "python-multipart"}),
        ("metrics", {"prometheus-client"}),
        ("django", {"django"}),
    ],
)
def test_each_install_brings_what_its_use_needs_and_no_more(
    wheel: Path, tmp_path: Path, extra: str, brings: set[str]
) -> None:
    """What pip would install into an empty environment (resolved from the package
    index, nothing installed): the core lean, each extra what it is for."""
    report = tmp_path / "report.json"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    _pip("install", "--dry-run", "--ignore-installed", "-q", "--report", report, target)
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-")
        for item in json.loads(report.read_text())["install"]
    }
    assert {"celery", "kombu", "redis", "httpx", "pydantic"} <= resolved
    assert resolved & HEAVY == brings
