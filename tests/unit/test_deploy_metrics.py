"""The metrics half of ``deploy/``: compose's ``metrics`` profile (Prometheus, Grafana),
the scrape config and the Grafana dashboard agree with each other and with the code.

What is checked without Docker: the profile adds only Prometheus and Grafana, on
loopback ports, with files that exist; Prometheus scrapes every worker service on the
port compose gives it and the receiver on its own; Grafana's provisioning points at that
Prometheus and at the mounted dashboard; the dashboard's queries name only metrics the
code defines, and every metric the code defines is on the dashboard. With ``promtool``
installed, the scrape config and every query are also parsed by Prometheus's own parser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from outbox.core.settings import Settings
from outbox.core.store import Store
from outbox.worker.metrics.fleet import FleetCollector
from outbox.worker.metrics.instruments import Instruments
from outbox.worker.metrics.receiver import ReceiverMetrics
from tests.unit.test_deploy import (
    DEPLOY,
    _argv,
    _is_celery,
    _option,
    compose,
    interpolate_list,
    load_all,
    service_env,
)

PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "outbox-dashboard.json"
PROFILED = {"prometheus", "grafana"}

_METRIC = re.compile(r"\boutbox_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def families() -> dict[str, str]:
    """Every metric family the code defines -> its type: the worker's instruments, the
    fleet's gauges (with a quota read and a broker answering), the receiver's."""
    registry = CollectorRegistry()
    Instruments(registry)
    store = Store.connect(fakeredis.FakeRedis(), retention=60)
    store.account.save_quota(
        {"cycle_used": 1, "cycle_max": 2, "cycle_remaining": 1, "read_at": 1.0}
    )
    collected = [
        *registry.collect(),
        *FleetCollector(store, lambda: {"email": 0}).collect(),
        *ReceiverMetrics().registry.collect(),
    ]
    return {family.name: family.type for family in collected}


def defined_names() -> set[str]:
    return {name + suffix for name, kind in families().items() for suffix in _SUFFIXES[kind]}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Bind mounts of a service: host path (relative to deploy/) -> path inside."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            out[source] = target
    return out


# -- compose ------------------------------------------------------------------------------


def test_the_metrics_profile_adds_prometheus_and_grafana_alone_on_loopback() -> None:
    found = {name: s["profiles"] for name, s in services().items() if "profiles" in s}
    assert found == {name: ["metrics"] for name in PROFILED}
    declared = set(compose()["volumes"])
    for name in PROFILED:
        service = services()[name]
        for port in service["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name}: publish on loopback only"
        for source in _mounts(service):
            assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
        named = [str(v).split(":")[0] for v in service.get("volumes", [])]
        assert {v for v in named if not v.startswith(".")} <= declared, name


def _workers() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in services().items()
        if _is_celery(_argv(interpolate_list(s.get("command", []))), "worker")
    }


def test_prometheus_scrapes_every_worker_service_on_its_port_and_the_receiver() -> None:
    [config] = load_all(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [sd] = jobs["outbox-workers"]["dns_sd_configs"]
    assert set(sd["names"]) == set(_workers()), "scrape every worker service"
    for name, service in _workers().items():
        settings = Settings.model_validate(service_env(service))
        assert settings.metrics_port == sd["port"], name
        assert settings.metrics_address == "0.0.0.0", f"{name}: Prometheus is another container"
    [static] = jobs["outbox-webhooks"]["static_configs"]
    receiver = _argv(services()["webhooks"]["command"])
    assert static["targets"] == [f"webhooks:{_option(receiver, '--port')}"]
    assert jobs["outbox-webhooks"].get("metrics_path", "/metrics") == "/metrics"
    prometheus = services()["prometheus"]
    config_file = _option(prometheus["command"], "--config.file")
    assert _mounts(prometheus)["./prometheus/prometheus.yml"] == config_file


def test_grafana_provisions_that_prometheus_and_the_mounted_dashboard() -> None:
    mounts = _mounts(services()["grafana"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    [sources] = load_all(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    [source] = sources["datasources"]
    port = services()["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
    [providers] = load_all(GRAFANA / "provisioning" / "dashboards" / "outbox.yaml")
    [provider] = providers["providers"]
    inside = mounts["./grafana/outbox-dashboard.json"]
    assert Path(inside).parent == Path(provider["options"]["path"])
    [variable] = dashboard()["templating"]["list"]
    assert variable["current"]["value"] == source["uid"]


# -- the dashboard ------------------------------------------------------------------------


def test_the_dashboard_queries_only_metrics_the_code_defines_and_shows_them_all() -> None:
    board = dashboard()
    exprs = queries(board)
    assert exprs
    defined = defined_names()
    used = set()
    for expr in exprs:
        names = set(_METRIC.findall(expr))
        assert names, f"a query that reads no outbox metric: {expr}"
        assert names <= defined, f"{expr}: {names - defined} is not a metric outbox defines"
        used |= names
    for family, kind in families().items():
        shown = {family + suffix for suffix in _SUFFIXES[kind]}
        assert shown & used, f"{family} is defined but not on the dashboard"


def test_the_dashboard_panels_fit_the_grid_and_read_the_chosen_source() -> None:
    board = dashboard()
    taken: set[tuple[int, int]] = set()
    ids = []
    for panel in panels(board):
        ids.append(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel.get("description"), f"{panel['title']}: say what it shows"
    assert len(ids) == len(set(ids))


def test_prometheus_parses_the_config_and_every_query(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Every query as a recording rule: promtool parses each with PromQL's own parser.
    # Grafana's $__rate_interval is a duration by the time Prometheus sees it.
    rules = [
        {"record": f"outbox:check:{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(queries(dashboard()))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
