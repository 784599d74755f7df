"""Keep secrets out of log output: a filter that redacts API keys and named secrets.

Nothing here configures logging. Call :func:`install_secret_filter` once logging is
set up (for Celery, from the ``after_setup_logger`` signal) so the filter sits on the
handlers that exist then; records propagated from child loggers pass through handler
filters, not through the root logger's own filter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from outbox.core.errors import API_KEY_PATTERN

__all__ = ["MIN_SECRET_LENGTH", "SecretsFilter", "install_secret_filter"]

#: Shorter registered secrets are ignored: redacting every "abc" would wreck the logs
#: and a secret that short protects nothing.
MIN_SECRET_LENGTH = 4

_KEY_MASK = "api-***"
_SECRET_MASK = "***"


class SecretsFilter(logging.Filter):
    """Redact API keys (by format) and registered secrets from message, args and tracebacks.

    A record that holds a secret is rewritten with its message already formatted
    (``args`` emptied); other records pass through untouched.
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str) -> None:
        """Also redact ``secret`` verbatim (e.g. the webhook secret)."""
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        """``text`` with every API key and registered secret masked."""
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, _SECRET_MASK)
        return API_KEY_PATTERN.sub(_KEY_MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the handler's to report, not ours
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters reuse a cached exc_text, so filling it here redacts tracebacks.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_FILTER = SecretsFilter()


def install_secret_filter(*secrets: str) -> None:
    """Redact ``secrets`` and API keys on the root logger and each of its handlers.

    Idempotent: one shared filter, so calling it again only registers more secrets and
    reaches handlers added since.
    """
    for secret in secrets:
        _FILTER.add_secret(secret)
    root = logging.getLogger()
    for target in (root, *root.handlers):
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
