"""``python -m outbox.worker.webhooks --host 127.0.0.1 --port 8026 [--secret S] [--insecure]``.

The secret comes from ``--secret`` or else ``OUTBOX_WEBHOOK_SECRET`` (prefer the
environment: a command-line argument is visible to every user of the host in ``ps``).
Events are published to the broker of ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from outbox.worker.webhooks.app import DEFAULT_MAX_BODY, DEFAULT_PORT, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outbox.worker.webhooks", description="SMTP2GO webhook receiver"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--secret", default=None, help="default: OUTBOX_WEBHOOK_SECRET")
    parser.add_argument(
        "--insecure", action="store_true", help="accept unauthenticated events (local only)"
    )
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    secret = args.secret
    if secret is None:
        from outbox.core.settings import get_settings

        configured = get_settings().webhook_secret
        secret = configured.get_secret_value() if configured else None
    try:
        run(args.host, args.port, secret=secret, insecure=args.insecure, max_body=args.max_body)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
