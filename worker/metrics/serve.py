"""Serving a worker's metrics on ``OUTBOX_METRICS_PORT``, from its main process.

``outbox.worker.startup`` calls :func:`start` at ``worker_init``, before the pool
starts, and only when the port is set; a worker imports prometheus-client only then, so
it runs without the ``metrics`` extra as long as the port is unset, and refuses to
start, saying why, when it is set.

A thread pool (the default) counts in the one process that serves: a plain registry. A
prefork pool counts in its children, so the values go to files that the serving parent
adds up on each scrape (prometheus-client's multiprocess mode). Those files live in
``PROMETHEUS_MULTIPROC_DIR`` when it is set (its ``*.db`` files are removed at start: one
directory per worker instance), else in a directory of the worker's own, removed when it
stops. prometheus-client reads the mode when it is imported; when something imported it
earlier, the mode is switched before the first metric is made. A child going away is
marked dead (:func:`child_exited`); its counts are kept, as counters never go down.

The fleet-wide gauges (:mod:`.fleet`) are read by the serving process at scrape time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outbox.core.errors import ConfigurationError
from outbox.worker.metrics import Metrics

if TYPE_CHECKING:
    from outbox.worker.runtime import Runtime

__all__ = ["MULTIPROC_ENV", "announce", "child_exited", "for_child", "start", "stop", "url"]

logger = logging.getLogger(__name__)

#: Where prometheus-client's multiprocess mode keeps its files (read at its import).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class _Served:
    server: Any
    multiprocess: bool
    #: A directory this worker made for the files, removed when it stops.
    own_dir: Path | None
    #: Where the page is, as a scraper reaches it on this host.
    url: str
    #: How values are counted, for the log.
    mode: str


_served: _Served | None = None


def _prepare_multiprocess() -> Path | None:
    """Point prometheus-client at an empty directory; the one made here, if any."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="outbox-metrics-"))
    os.environ[MULTIPROC_ENV] = str(made)
    return made


def _import_client(multiprocess: bool) -> Any:
    try:
        import prometheus_client
        from prometheus_client import values
    except ImportError:
        raise ConfigurationError(
            "OUTBOX_METRICS_PORT is set but prometheus-client is not installed: "
            "pip install 'smtp2go-outbox[metrics]' (or unset OUTBOX_METRICS_PORT)"
        ) from None
    if multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
        # Loaded before the mode was set: Flower, a ``celery`` subcommand, imports it
        # when the command starts. Metrics made from now on count to files; Flower's
        # own, made at its import, stay in memory and are never served here.
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return prometheus_client


def start(rt: Runtime, *, prefork: bool, app: Any) -> Metrics:
    """Serve ``rt``'s metrics on ``OUTBOX_METRICS_PORT``; the :class:`Metrics` this
    process counts with. Raises :class:`ConfigurationError` when the extra is missing or
    the port is taken.

    A prefork parent counts nothing (it sends nothing; its relay's rare hold probes go
    uncounted): a child forked while the parent held prometheus-client's lock on its
    files would wait for it forever. Each child makes its own (:func:`for_child`)."""
    global _served
    settings = rt.settings
    own_dir = _prepare_multiprocess() if prefork else None
    try:
        client = _import_client(prefork)
        from outbox.worker.metrics.fleet import FleetCollector, queue_depth_reader
        from outbox.worker.metrics.instruments import Instruments

        registry = client.CollectorRegistry()
        counting: Metrics
        if prefork:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            counting = Metrics()
        else:
            counting = Instruments(registry, _named_tenants(settings))
        registry.register(FleetCollector(rt.store, queue_depth_reader(app)))
        address, port = settings.metrics_address, settings.metrics_port
        try:
            server, _thread = client.start_http_server(port, addr=address, registry=registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on {address}:{port} (OUTBOX_METRICS_ADDRESS, "
                f"OUTBOX_METRICS_PORT): {exc.strerror or exc}"
            ) from None
    except BaseException:
        _remove(own_dir)
        raise
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{server.server_address[1]}/metrics"
    mode = f"a prefork pool's, files in {os.environ[MULTIPROC_ENV]}" if prefork else "one process"
    _served = _Served(server, prefork, own_dir, url, mode)
    return counting


def for_child() -> Metrics | None:
    """What a prefork child counts with (into its own files), or ``None`` when the
    worker serves no metrics from children."""
    if _served is None or not _served.multiprocess:
        return None
    from outbox.core.settings import get_settings
    from outbox.worker.metrics.instruments import Instruments

    return Instruments(None, _named_tenants(get_settings()))


def _named_tenants(settings: Any) -> set[str]:
    """The tenants the settings name: each gets metrics labels of its own."""
    from outbox.core.windows import parse_tenant_limits, parse_tenant_weights

    return set(parse_tenant_weights(settings.tenant_weights)) | set(
        parse_tenant_limits(settings.tenant_limits)
    )


def url() -> str | None:
    """Where this worker's metrics are served, or ``None``."""
    return _served.url if _served is not None else None


def announce() -> None:
    """Say where the metrics are (once the worker's logging is set up)."""
    if _served is not None:
        logger.info("serving Prometheus metrics on %s (%s)", _served.url, _served.mode)


def child_exited(pid: int) -> None:
    """A prefork child is gone: its live gauges (if any) go with it; counts stay."""
    if _served is not None and _served.multiprocess:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def stop() -> None:
    """Stop serving (the worker is shutting down) and remove the files' own directory."""
    global _served
    served, _served = _served, None
    if served is None:
        return
    served.server.shutdown()
    served.server.server_close()
    _remove(served.own_dir)


def _remove(directory: Path | None) -> None:
    if directory is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)
        if os.environ.get(MULTIPROC_ENV) == str(directory):
            del os.environ[MULTIPROC_ENV]
