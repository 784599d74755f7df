"""The ``outbox`` command line: records, dead letters, replays, quick sends, suppressions,
the servers, the demo.

Exit codes, the same for every command, so scripts can tell failures apart:

====  ====================================================================
0     done
1     not found, nothing to do, or the demo's outcome was not what it should be
2     bad input: a usage error, an invalid message (each bad field is named on
      stderr), a bad setting; an API key SMTP2GO refuses, or without the permission
      a command needs (named on stderr)
3     Redis (``OUTBOX_REDIS_URL``) or the broker (``CELERY_BROKER_URL``) unreachable;
      SMTP2GO (``SMTP2GO_BASE_URL``) unreachable, failing or rate limiting, or no slot
      of the shared rate limit: try again later
====  ====================================================================

``--json`` prints one JSON document on stdout and nothing else there (an error too, as
``{"error": ...}``); messages go to stderr either way. The API key is never printed, and
passwords in URLs are masked. Configuration is the environment (and ``.env``).
"""

from __future__ import annotations

from typing import Any

import click

from outbox.cli.demo.command import demo
from outbox.cli.letters import dead, replay, retry_failed
from outbox.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    fail,
    print_json,
    redacted_url,
)
from outbox.cli.sending import send
from outbox.cli.serve import webhooks
from outbox.cli.status import (
    cancel_command,
    erase_command,
    pause_command,
    quota,
    resume_command,
    status,
)
from outbox.cli.suppressions import suppressions
from outbox.sandbox.command import sandbox

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]


def _configured(name: str) -> str:
    """A URL setting for an error message (the installed runtime's, when there is one)."""
    try:
        from outbox.worker.runtime import get_runtime

        settings = get_runtime().settings
    except Exception:
        return "?"
    return redacted_url(str(getattr(settings, name)))


#: Where the group notes that the command line asked for ``--json``.
_JSON = "outbox.json"


class OutboxGroup(click.Group):
    """Turns the failures every command can meet into one clear line and an exit code
    (and, when the command was given ``--json``, a JSON document on stdout)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = args[: args.index("--")] if "--" in args else args
        ctx.meta[_JSON] = "--json" in options
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        import redis
        from kombu.exceptions import OperationalError
        from pydantic import ValidationError as SettingsError

        from outbox.core.errors import ConfigurationError, EnqueueError, Unavailable

        as_json = bool(ctx.meta.get(_JSON))
        try:
            return super().invoke(ctx)
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            EnqueueError,
            Unavailable,
        ) as exc:
            fail(
                f"cannot reach Redis at {_configured('redis_url')} (OUTBOX_REDIS_URL): {exc}",
                EXIT_UNREACHABLE,
                as_json=as_json,
            )
        except OperationalError as exc:
            fail(
                f"cannot reach the broker at {_configured('celery_broker_url')} "
                f"(CELERY_BROKER_URL): {exc}",
                EXIT_UNREACHABLE,
                as_json=as_json,
            )
        except SettingsError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            fail(f"bad configuration: {problems}", EXIT_USAGE, as_json=as_json)
        except ConfigurationError as exc:
            fail(str(exc), EXIT_USAGE, as_json=as_json)
        except click.UsageError as exc:
            if as_json:  # click says what was wrong, with the usage, on stderr
                print_json({"error": exc.format_message()})
            raise


#: The distribution's name on the package index (the import name is ``outbox``; the
#: name ``outbox`` there belongs to an unrelated project).
DISTRIBUTION = "smtp2go-outbox"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a checkout without ``pip install -e .``
        return "unknown (not installed)"


@click.group(cls=OutboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="outbox")
def main() -> None:
    """outbox: an outbound-messaging queue for SMTP2GO (email, MIME, templates, SMS)."""


for command in (
    demo, sandbox, webhooks, status, quota, dead, replay, retry_failed, send, cancel_command,
    pause_command, resume_command, erase_command, suppressions,
):  # fmt: skip
    main.add_command(command)


if __name__ == "__main__":
    main(prog_name="outbox")
