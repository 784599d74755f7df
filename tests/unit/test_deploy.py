"""The deployment files in ``deploy/`` parse, and everything they run really exists.

Docker is not needed: the compose file and the Kubernetes manifests are parsed as YAML,
the systemd units as key/value files, and every command line they contain (service
commands, health checks, probes, ``ExecStart=``) is checked against the project:

- ``celery -A outbox.worker <sub> ...``: the ``worker`` app loads, ``<sub>`` is a Celery
  subcommand, its options parse with Celery's own click command (Flower's with its
  tornado options), queues given to ``-Q`` exist in ``celeryconfig.task_queues``, and
  an ``inspect`` action is a real inspect command;
- ``outbox <sub> ...``: the subcommand exists in the ``outbox.cli.main`` click group
  (and its options parse there);
- ``python -c CODE``: the code compiles.

Then the operational rules: exactly one beat, worker grace periods longer than the
longest task, the API key only in the workers' environment, settings names that
``worker.settings.Settings`` knows and values it accepts.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from outbox.core.settings import Settings
from outbox.worker import celeryconfig

yaml = pytest.importorskip("yaml", reason="pyyaml is in the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"

#: The ``outbox`` subcommands the design promises, used only while ``producers/cli.py``
#: does not exist yet.
DESIGN_CLI_COMMANDS = ("demo", "sandbox", "status", "dead", "webhooks", "send")
#: Celery subcommands a deployment runs.
CELERY_SUBCOMMANDS = {"worker", "beat", "flower", "inspect"}
#: Settings every role may see; secrets are checked separately.
SECRETS = {"SMTP2GO_API_KEY", "OUTBOX_WEBHOOK_SECRET", "FLOWER_BASIC_AUTH"}
#: Variables of deploy/.env that are not outbox settings: other programs' secrets.
NOT_SETTINGS = {"FLOWER_BASIC_AUTH", "GRAFANA_ADMIN_PASSWORD"}
#: Compose services that run another project's image (the rest build outbox's).
THIRD_PARTY = {"redis", "prometheus", "grafana"}
#: Instances of ``outbox-worker@.service`` the docs describe.
WORKER_INSTANCES = ("email", "sms", "bulk")

QUEUES = {queue.name for queue in celeryconfig.task_queues}
SETTINGS_ALIASES = {
    str(info.validation_alias) for info in Settings.model_fields.values() if info.validation_alias
}
DEFAULT_TIMEOUT = float(Settings.model_fields["smtp2go_timeout"].default)


# -- loading --------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def compose() -> dict[str, Any]:
    [doc] = load_all(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") != "Kustomization":
                objects.append(doc)
    return objects


def deployments() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Deployment"}


@dataclass
class Unit:
    path: Path
    entries: dict[str, dict[str, list[str]]]

    def get(self, section: str, key: str) -> list[str]:
        return self.entries.get(section, {}).get(key, [])

    def one(self, section: str, key: str) -> str:
        [value] = self.get(section, key)
        return value


def load_unit(path: Path) -> Unit:
    entries: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            entries.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {raw!r}"
        entries.setdefault(section, {}).setdefault(key.strip(), []).append(value.strip())
    return Unit(path, entries)


def units() -> list[Unit]:
    return [load_unit(p) for p in sorted(SYSTEMD.glob("*.service"))]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not VAR=value: {raw!r}"
        env[key.strip()] = value.strip().strip("'\"")
    return env


def shipped_env_file(installed: str) -> Path | None:
    """The example in deploy/systemd/ of an EnvironmentFile= path (``/etc/outbox/x.env``)."""
    name = Path(installed.lstrip("-")).name
    for candidate in (SYSTEMD / name, SYSTEMD / f"{name}.example"):
        if candidate.exists():
            return candidate
    return None


_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` resolved to its default (secrets to a dummy)."""

    def sub(match: re.Match[str]) -> str:
        _name, op, arg = match.groups()
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return "dummy-secret-value"
        return ""

    return _INTERPOLATION.sub(sub, str(value)).replace("$$", "$")


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


# -- command lines --------------------------------------------------------------------------


@dataclass
class Command:
    where: str
    argv: list[str]


def _argv(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def _unshell(argv: list[str]) -> list[str]:
    """``sh -c "one command"`` -> that command's argv."""
    if len(argv) >= 3 and Path(argv[0]).name in {"sh", "bash"} and argv[1] == "-c":
        script = argv[2]
        assert not re.search(r"[;&|]", script), f"keep shell probes to one command: {script!r}"
        return shlex.split(script)
    return argv


def compose_commands() -> Iterator[Command]:
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue  # not outbox's image (redis)
        if "command" in service:
            yield Command(f"compose {name} command", _argv(interpolate_list(service["command"])))
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            kind, *rest = test if isinstance(test, list) else ["CMD-SHELL", test]
            if kind == "CMD-SHELL":
                [script] = rest
                argv = _unshell(["sh", "-c", interpolate(script)])
            else:
                assert kind == "CMD", f"{name}: healthcheck test must be CMD or CMD-SHELL"
                argv = [interpolate(part) for part in rest]
            yield Command(f"compose {name} healthcheck", argv)


def interpolate_list(value: Any) -> Any:
    if isinstance(value, list):
        return [interpolate(part) for part in value]
    return interpolate(value)


def k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in k8s_objects():
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}:
            spec = obj["spec"]["template"]["spec"]
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                yield f"k8s {obj['metadata']['name']}/{container['name']}", container


def k8s_commands() -> Iterator[Command]:
    for where, container in k8s_containers():
        argv = [*container.get("command", []), *container.get("args", [])]
        assert argv, f"{where}: name the command explicitly, not the image's default"
        yield Command(f"{where} command", _argv(argv))
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            exec_ = (container.get(probe) or {}).get("exec")
            if exec_:
                yield Command(f"{where} {probe}", _unshell(_argv(exec_["command"])))


def expand_unit(text: str, *, instance: str, env: dict[str, str]) -> str:
    text = text.replace("%i", instance).replace("%I", instance).replace("%H", "host")
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], text)


def unit_env(unit: Unit, instance: str) -> dict[str, str]:
    """The unit's environment as systemd builds it (Environment=, then the env files)."""
    env: dict[str, str] = {}
    for item in unit.get("Service", "Environment"):
        key, _, value = expand_unit(item, instance=instance, env={}).partition("=")
        env[key] = value
    for item in unit.get("Service", "EnvironmentFile"):
        shipped = shipped_env_file(expand_unit(item, instance=instance, env={}))
        if shipped is not None:
            env.update(read_env_file(shipped))
    return env


def systemd_commands() -> Iterator[Command]:
    for unit in units():
        instances = WORKER_INSTANCES if unit.path.name.endswith("@.service") else ("",)
        for instance in instances:
            env = unit_env(unit, instance)
            for line in unit.get("Service", "ExecStart"):
                argv = shlex.split(expand_unit(line.lstrip("-@+!:"), instance=instance, env=env))
                yield Command(f"systemd {unit.path.name} ({instance or 'no instance'})", argv)


def all_commands() -> list[Command]:
    return [*compose_commands(), *k8s_commands(), *systemd_commands()]


# -- checking a command line ----------------------------------------------------------------


def _celery_app() -> Any:
    from celery.app.utils import find_app

    return find_app("outbox.worker")


def _celery_context(app: Any) -> Any:
    from celery.bin.base import CLIContext

    return CLIContext(app=app, no_color=True, workdir=None, quiet=True)


def _parse_flower_options(where: str, args: list[str]) -> None:
    import flower.options  # noqa: F401 - defines Flower's tornado options
    from tornado.options import options

    defined = options._options
    for arg in args:
        assert arg.startswith("--"), f"{where}: flower takes --name=value options, got {arg!r}"
        name, _, value = arg[2:].partition("=")
        option = defined.get(name.replace("_", "-"))
        assert option is not None, f"{where}: flower has no option --{name}"
        if value and option.type in (int, float):
            option.type(value)
        if value and option.type is bool:
            assert value.lower() in {"true", "false", "1", "0", "yes", "no"}, f"{where}: {arg}"


def check_celery(where: str, argv: list[str]) -> click.Context | None:
    from celery.bin.celery import celery as celery_group
    from celery.worker.control import Panel

    rest = argv[1:]
    if rest[:1] in (["-A"], ["--app"]):
        app_name, rest = rest[1], rest[2:]
    elif rest and rest[0].startswith("--app="):
        app_name, rest = rest[0].split("=", 1)[1], rest[1:]
    else:
        raise AssertionError(f"{where}: celery must be told the app: celery -A outbox.worker ...")
    assert app_name == "outbox.worker", f"{where}: the app is 'outbox.worker', not {app_name!r}"
    assert rest, f"{where}: no celery subcommand"
    sub, args = rest[0], rest[1:]
    assert sub in CELERY_SUBCOMMANDS, f"{where}: unexpected celery subcommand {sub!r}"
    assert sub in celery_group.commands, f"{where}: celery has no subcommand {sub!r}"
    if sub == "flower":
        _parse_flower_options(where, args)
        return None
    app = _celery_app()
    try:
        command: click.Command = celery_group.commands[sub]
        ctx = command.make_context(sub, list(args), obj=_celery_context(app))
    except click.ClickException as exc:
        raise AssertionError(f"{where}: celery {sub} {args}: {exc.format_message()}") from exc
    if sub == "worker":
        queues = ctx.params["queues"] or []
        assert queues, f"{where}: name the worker's queues with -Q"
        unknown = set(queues) - QUEUES
        assert not unknown, f"{where}: -Q names queues not in celeryconfig: {unknown}"
        assert not ctx.params.get("beat"), f"{where}: never embed beat (-B) in a worker"
    if sub == "inspect":
        action = ctx.params["command"]
        assert action in Panel.meta, f"{where}: no inspect command {action!r}"
        assert Panel.meta[action].type == "inspect", f"{where}: {action!r} is a control command"
    return ctx


def outbox_cli() -> dict[str, click.Command | None]:
    try:
        from outbox.cli import main
    except ModuleNotFoundError as exc:
        if exc.name != "outbox.cli":
            raise
        return dict.fromkeys(DESIGN_CLI_COMMANDS)
    assert isinstance(main, click.Group)
    return dict(main.commands)


def check_outbox(where: str, argv: list[str]) -> None:
    commands = outbox_cli()
    assert len(argv) >= 2, f"{where}: 'outbox' needs a subcommand"
    sub, args = argv[1], argv[2:]
    assert sub in commands, f"{where}: outbox has no subcommand {sub!r} ({sorted(commands)})"
    command = commands[sub]
    if command is not None:
        try:
            command.make_context(sub, list(args))
        except click.ClickException as exc:
            raise AssertionError(f"{where}: outbox {sub} {args}: {exc.format_message()}") from exc


def check_command(command: Command) -> None:
    argv = command.argv
    assert argv, f"{command.where}: empty command"
    program = Path(argv[0]).name
    if program == "celery":
        check_celery(command.where, argv)
    elif program == "outbox":
        check_outbox(command.where, argv)
    elif program.startswith("python") and argv[1:2] == ["-c"]:
        ast.parse(argv[2])
    else:
        raise AssertionError(f"{command.where}: runs {argv[0]!r}, which outbox does not provide")


def _option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


def _celery_sub(argv: list[str]) -> str | None:
    """The subcommand of ``celery -A outbox.worker <sub> ...`` (``None`` for anything else)."""
    if not argv or Path(argv[0]).name != "celery":
        return None
    rest = argv[1:]
    if rest[:1] in (["-A"], ["--app"]):
        rest = rest[2:]
    elif rest[:1] and rest[0].startswith("--app="):
        rest = rest[1:]
    return rest[0] if rest else None


def _is_celery(argv: list[str], sub: str) -> bool:
    return _celery_sub(argv) == sub


def _seconds(value: Any) -> float:
    """``90``, ``"90s"``, ``"1m30s"``, ``"2m"`` -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {value!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def _longest_task(configured: str | None) -> float:
    """Longest a send task runs once the worker is told to stop (senders waiting for a
    slot give it back at once): one request, its claim's lease (the client timeout as
    deployed, plus the margin)."""
    from outbox.core.settings import Settings

    timeout = max(DEFAULT_TIMEOUT, float(configured or 0))
    return Settings(SMTP2GO_TIMEOUT=timeout).lease


# -- tests: parsing and commands ------------------------------------------------------------


def test_every_yaml_in_deploy_parses() -> None:
    files = yaml_files()
    assert COMPOSE in files
    assert len([f for f in files if f.parent == K8S]) >= 5
    for path in files:
        docs = load_all(path)
        assert docs, f"{path}: no documents"
        assert all(isinstance(doc, dict) for doc in docs), path


def test_the_worker_app_loads_with_every_scheduled_task() -> None:
    from celery import Celery

    app = _celery_app()
    assert isinstance(app, Celery)
    app.loader.import_default_modules()
    for entry in celeryconfig.beat_schedule.values():
        assert entry["task"] in app.tasks, f"beat schedules {entry['task']}, not registered"
    assert {"outbox.send_email", "outbox.send_sms"} <= set(app.tasks)


def test_there_are_commands_to_check() -> None:
    commands = all_commands()
    subcommands = {_celery_sub(c.argv) for c in commands}
    for sub in CELERY_SUBCOMMANDS:
        assert sub in subcommands, f"nothing runs celery {sub}"
    assert any(Path(c.argv[0]).name == "outbox" for c in commands)
    for source in ("compose", "k8s", "systemd"):
        assert any(c.where.startswith(source) for c in commands), source


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: c.where)
def test_command_runs_something_that_exists(command: Command) -> None:
    check_command(command)


@pytest.mark.parametrize(
    "argv",
    [
        ["celery", "-A", "outbox.worker", "worker", "-Q", "emails"],
        ["celery", "-A", "outbox.worker", "wroker"],
        ["celery", "-A", "outbox.worker", "worker", "--no-such-option"],
        ["celery", "-A", "outbox.worker", "worker", "-Q", "email", "-B"],
        ["celery", "-A", "outbox.worker", "inspect", "shutdown"],
        ["celery", "-A", "workers", "beat"],
        ["celery", "worker"],
        ["celery", "-A", "outbox.worker", "flower", "--no-such-option=1"],
        ["celery", "-A", "outbox.worker", "flower", "--port=http"],
        ["outbox", "webhook"],
        ["gunicorn", "app"],
    ],
    ids=" ".join,
)
def test_the_checker_catches_wrong_commands(argv: list[str]) -> None:
    with pytest.raises((AssertionError, ValueError)):
        check_command(Command("bad", argv))


# -- tests: compose -------------------------------------------------------------------------


def test_compose_services_and_redis_persistence() -> None:
    services = compose()["services"]
    expected = {"redis", "worker-email", "worker-sms", "beat", "flower", "webhooks"}
    assert expected <= set(services)
    redis = services["redis"]
    command = " ".join(_argv(redis["command"]))
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    for name in ("worker-email", "worker-sms", "webhooks", "flower"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
        depends = services[name].get("depends_on") or {}
        assert depends.get("redis", {}).get("condition") == "service_healthy", name


def test_compose_workers_queues_names_and_health_checks_agree() -> None:
    services = compose()["services"]
    consumed: set[str] = set()
    for name, service in services.items():
        argv = _argv(interpolate_list(service.get("command", [])))
        if not _is_celery(argv, "worker"):
            continue
        consumed |= set((_option(argv, "-Q", "--queues") or "").split(","))
        node = _option(argv, "-n", "--hostname")
        assert node is not None, f"{name}: name the node with -n"
        assert node.endswith("@%h"), f"{name}: name the node <role>@%h"
        probe = _unshell(["sh", "-c", interpolate(service["healthcheck"]["test"][1])])
        assert _is_celery(probe, "inspect"), name
        assert "ping" in probe, name
        destination = _option(probe, "-d", "--destination")
        assert destination == node.replace("%h", "$HOSTNAME"), (name, destination, node)
    assert consumed == QUEUES, "every queue needs a worker"
    email = _argv(services["worker-email"]["command"])
    assert _option(email, "-Q") == "email,bulk", "bulk is drained after email by one worker"


def test_compose_image_is_built_from_the_deploy_dockerfile() -> None:
    for name, service in compose()["services"].items():
        if name in THIRD_PARTY:
            image = str(service["image"])
            assert "build" not in service, name
            assert ":" in image, f"{name}: pin the image's version"
            assert not image.endswith(":latest"), f"{name}: pin the image's version"
            continue
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        )


def test_compose_exactly_one_beat() -> None:
    services = compose()["services"]
    beats = [n for n, s in services.items() if _is_celery(_argv(s.get("command", [])), "beat")]
    assert beats == ["beat"]
    assert services["beat"]["deploy"]["replicas"] == 1


def test_compose_worker_grace_period_outlasts_the_longest_task() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if not _is_celery(_argv(service.get("command", [])), "worker"):
            continue
        env = service_env(service)
        grace = _seconds(service.get("stop_grace_period", "10s"))
        assert grace > _longest_task(env.get("SMTP2GO_TIMEOUT")), name
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM", name


def test_compose_environment_names_are_settings_and_secrets_stay_put() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name in THIRD_PARTY:
            continue
        env = service_env(service)
        unknown = set(env) - SETTINGS_ALIASES - NOT_SETTINGS
        assert not unknown, f"{name}: settings outbox does not read: {unknown}"
        assert "env_file" not in service, f"{name}: env_file would hand every secret to it"
        is_worker = _is_celery(_argv(service["command"]), "worker")
        assert ("SMTP2GO_API_KEY" in env) == is_worker, f"{name}: the API key is for workers only"
        assert ("OUTBOX_WEBHOOK_SECRET" in env) == (name == "webhooks"), name
        assert ("FLOWER_BASIC_AUTH" in env) == (name == "flower"), name
        settings = Settings.model_validate(env)
        assert settings.base_url.startswith("https://")
        for secret in SECRETS & set(env):
            raw = str(service["environment"][secret])
            assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", raw), f"{name}: {secret} must come from .env"


def test_env_example_names_are_settings() -> None:
    env = read_env_file(DEPLOY / ".env.example")
    assert {"SMTP2GO_API_KEY", "OUTBOX_WEBHOOK_SECRET"} <= set(env)
    assert not set(env) - SETTINGS_ALIASES - NOT_SETTINGS


# -- tests: Dockerfile ----------------------------------------------------------------------


def test_dockerfile_builds_the_project_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install '.[") for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    copied = set()
    for line in lines:
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            copied |= set(sources)
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"
    # every folder the package is built from (a folder added to package-dir, too)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = set(config["tool"]["setuptools"]["package-dir"].values())
    assert folders <= copied, f"the image is built without {sorted(folders - copied)}"
    cmd = [line for line in lines if line.startswith("CMD ")][-1]
    check_command(Command("Dockerfile CMD", _argv(ast.literal_eval(cmd[4:]))))


# -- tests: Kubernetes ----------------------------------------------------------------------


def test_k8s_manifests_are_namespace_free_and_well_formed() -> None:
    objects = k8s_objects()
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for obj in objects:
        assert obj.get("apiVersion"), obj
        assert obj.get("kind"), obj
        assert "namespace" not in obj["metadata"], f"{obj['metadata']['name']} sets a namespace"
    for name, dep in deployments().items():
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
    pods = [d["spec"]["template"] for d in deployments().values()]
    for svc in (o for o in objects if o["kind"] == "Service"):
        name = svc["metadata"]["name"]
        selected = [
            p for p in pods if svc["spec"]["selector"].items() <= p["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {name} selects {len(selected)} Deployments"
        ports = {
            port.get("name")
            for c in selected[0]["spec"]["containers"]
            for port in c.get("ports", [])
        } | {
            port["containerPort"]
            for c in selected[0]["spec"]["containers"]
            for port in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no port {port['targetPort']}"


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = load_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def _config_map() -> dict[str, str]:
    [cm] = [o for o in k8s_objects() if o["kind"] == "ConfigMap"]
    return dict(cm["data"])


def test_k8s_configmap_holds_valid_settings_and_no_secrets() -> None:
    data = _config_map()
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"
    assert not set(data) - SETTINGS_ALIASES, set(data) - SETTINGS_ALIASES
    assert not SECRETS & set(data), "secrets belong in the Secret"
    Settings.model_validate(data)


def test_k8s_secrets_come_from_a_secret_and_only_where_needed() -> None:
    refs = {o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "ConfigMap"}
    for where, container in k8s_containers():
        argv = [*container.get("command", []), *container.get("args", [])]
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, f"{where}: secrets by key, not envFrom"
            assert source["configMapRef"]["name"] in refs, where
        env = {item["name"]: item for item in container.get("env", [])}
        for name, item in env.items():
            if name in SECRETS:
                assert "value" not in item, f"{where}: {name} written into the manifest"
                assert item["valueFrom"]["secretKeyRef"]["name"], where
        is_worker = _is_celery(argv, "worker")
        assert ("SMTP2GO_API_KEY" in env) == is_worker, f"{where}: API key for workers only"
        assert ("OUTBOX_WEBHOOK_SECRET" in env) == (Path(argv[0]).name == "outbox"), where
    assert not [o for o in k8s_objects() if o["kind"] == "Secret"], "never commit a Secret"


def test_k8s_workers_grace_probes_and_requests() -> None:
    workers = {
        name: dep
        for name, dep in deployments().items()
        if _is_celery(dep["spec"]["template"]["spec"]["containers"][0]["command"], "worker")
    }
    assert len(workers) >= 2
    consumed: set[str] = set()
    for name, dep in workers.items():
        spec = dep["spec"]["template"]["spec"]
        grace = spec["terminationGracePeriodSeconds"]
        assert grace > _longest_task(_config_map().get("SMTP2GO_TIMEOUT")), name
        [container] = spec["containers"]
        assert container["resources"]["requests"]["cpu"], name
        assert container["resources"]["requests"]["memory"], name
        node = _option(container["command"], "-n", "--hostname")
        assert node is not None, name
        assert node.endswith("@%h"), name
        consumed |= set((_option(container["command"], "-Q") or "").split(","))
        for probe in ("livenessProbe", "readinessProbe"):
            argv = _unshell(container[probe]["exec"]["command"])
            assert _is_celery(argv, "inspect"), (name, probe)
            assert "ping" in argv, (name, probe)
            assert _option(argv, "-d") == node.replace("%h", "$HOSTNAME"), (name, probe)
            assert container[probe]["timeoutSeconds"] >= 10, "a celery ping needs time"
    assert consumed == QUEUES


def test_k8s_exactly_one_beat_recreated_never_rolled() -> None:
    beats = [
        dep
        for dep in deployments().values()
        for c in dep["spec"]["template"]["spec"]["containers"]
        if _is_celery(c["command"], "beat")
    ]
    assert len(beats) == 1
    [beat] = beats
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_webhooks_and_flower_have_http_probes_and_services() -> None:
    objects = k8s_objects()
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    expected = {"outbox": "/healthz", "celery": "/healthcheck"}
    found = set()
    for name, dep in deployments().items():
        [container] = dep["spec"]["template"]["spec"]["containers"]
        argv = container["command"]
        role = "webhooks" if Path(argv[0]).name == "outbox" else _celery_sub(argv)
        if role not in {"webhooks", "flower"}:
            continue
        found.add(role)
        assert name in services, f"{name} has no Service"
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == expected[Path(argv[0]).name], name
    assert found == {"webhooks", "flower"}


# -- tests: systemd -------------------------------------------------------------------------


def test_systemd_units_exist_and_share_the_environment_file() -> None:
    names = {u.path.name for u in units()}
    assert names == {
        "outbox-worker@.service",
        "outbox-beat.service",
        "outbox-flower.service",
        "outbox-webhooks.service",
    }
    for unit in units():
        files = unit.get("Service", "EnvironmentFile")
        assert "/etc/outbox/outbox.env" in files, unit.path.name
        for item in files:
            if not item.startswith("-"):
                assert shipped_env_file(item) is not None, f"{item}: ship an example in deploy/"
        assert unit.one("Service", "KillSignal") == "SIGTERM", unit.path.name
        assert unit.one("Service", "Restart") == "on-failure", unit.path.name
        assert unit.one("Service", "User") not in {"root", "0"}, unit.path.name
        [exec_start] = unit.get("Service", "ExecStart")
        assert exec_start.split()[0].startswith("/"), "ExecStart needs an absolute path"


def test_systemd_worker_grace_and_instances() -> None:
    worker = load_unit(SYSTEMD / "outbox-worker@.service")
    configured = read_env_file(SYSTEMD / "outbox.env.example").get("SMTP2GO_TIMEOUT")
    assert _seconds(worker.one("Service", "TimeoutStopSec")) > _longest_task(configured)
    queues = {}
    for instance in WORKER_INSTANCES:
        env = unit_env(worker, instance)
        [line] = worker.get("Service", "ExecStart")
        argv = shlex.split(expand_unit(line, instance=instance, env=env))
        queues[instance] = _option(argv, "-Q")
        assert _option(argv, "-n") == f"{instance}@host"
    assert queues["email"] == "email,bulk"
    assert queues["sms"] == "sms"


def test_systemd_secrets_reach_only_their_unit() -> None:
    shared = read_env_file(SYSTEMD / "outbox.env.example")
    assert not SECRETS & set(shared), "outbox.env is read by every unit: no secrets in it"
    assert not set(shared) - SETTINGS_ALIASES
    Settings.model_validate(shared)
    for unit in units():
        env: dict[str, str] = {}
        for item in unit.get("Service", "EnvironmentFile"):
            shipped = shipped_env_file(item.replace("%i", "email"))
            if shipped is not None:
                env.update(read_env_file(shipped))
        name = unit.path.name
        assert ("SMTP2GO_API_KEY" in env) == name.startswith("outbox-worker@"), name
        assert ("OUTBOX_WEBHOOK_SECRET" in env) == (name == "outbox-webhooks.service"), name
        assert ("FLOWER_BASIC_AUTH" in env) == (name == "outbox-flower.service"), name


def test_systemd_exactly_one_beat_unit() -> None:
    beat_units = [
        u
        for u in units()
        if any(_is_celery(shlex.split(x), "beat") for x in u.get("Service", "ExecStart"))
    ]
    assert [u.path.name for u in beat_units] == ["outbox-beat.service"], "beat is not templated"


def test_the_config_flower_shows_holds_settings_only_with_plain_values() -> None:
    """``celery inspect conf`` (and Flower's worker page) list every public name of the
    config module: the helpers it imports (an enum, kombu's classes, ``annotations``, a
    ``__future__._Feature``) must not be among them, and task names are plain strings."""
    from enum import Enum

    from outbox.worker.celery_app import app

    table = app.conf.table(with_defaults=False, censored=True)
    helpers = {"Exchange", "OutboxQueue", "Queue", "TaskName", "annotations", "timedelta"}
    assert not helpers & set(table)
    assert all(name.islower() for name in table)
    outbox_tasks = [task for name, task in app.tasks.items() if name.startswith("outbox.")]
    assert outbox_tasks
    assert all(type(task.name) is str and not isinstance(task.name, Enum) for task in outbox_tasks)


#: What an application's own ``celeryconfig.py`` may say (Celery's tutorial, RQ days).
_HOSTILE_CELERYCONFIG = """\
task_serializer = "pickle"
accept_content = ["pickle", "json"]
task_acks_late = False
task_default_queue = "celery"
"""


def test_no_celeryconfig_on_the_apps_path_replaces_the_workers(tmp_path: Path) -> None:
    """A worker started beside an app's ``celeryconfig.py`` (first on the path, as the
    current directory is) reads outbox's settings and never imports the app's file."""
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "celeryconfig.py").write_text(_HOSTILE_CELERYCONFIG)
    code = (
        "import json, sys\n"
        "from outbox.worker import app\n"
        "c = app.conf\n"
        "print(json.dumps([c.task_serializer, list(c.accept_content), c.task_acks_late,\n"
        "                  c.task_default_queue, 'celeryconfig' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True
    )
    assert json.loads(out.stdout) == ["json", ["json"], True, "email", False]


def test_the_worker_settings_are_a_file_not_a_link() -> None:
    """Tools that copy a tree (image builds, sdists, some CI caches) drop or break links:
    the settings module is a real file, and the tree holds no link at all."""
    import subprocess

    assert not (ROOT / "worker" / "celeryconfig.py").is_symlink()
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    staged = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    links = [line.split("\t", 1)[1] for line in staged.splitlines() if line.startswith("120000")]
    assert not links, f"symbolic links in the tree: {links}"
