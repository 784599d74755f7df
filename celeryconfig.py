"""A pointer: the worker's Celery settings are ``worker/celeryconfig.py``.

A worker reads them as ``outbox.worker.celeryconfig`` (``app.config_from_object`` names
the package's own module, never a ``celeryconfig`` found on the path), so neither this
file nor one beside an application can replace them. This one only re-exports them for
tools that look for a ``celeryconfig`` module at a project's root.
"""

from outbox.worker.celeryconfig import *  # noqa: F403
