"""The SMTP2GO v3 payloads under one name for their users: the request bodies
(:mod:`.requests`, :mod:`.management`), the answers (:mod:`.answers`) and the checks they
are built from (:mod:`.checks`). Each module's ``__all__`` is the one list of its names."""

from __future__ import annotations

from outbox.core.smtp2go import answers, checks, management, requests
from outbox.core.smtp2go.answers import *  # noqa: F403
from outbox.core.smtp2go.checks import *  # noqa: F403
from outbox.core.smtp2go.management import *  # noqa: F403
from outbox.core.smtp2go.requests import *  # noqa: F403

__all__ = [*answers.__all__, *checks.__all__, *management.__all__, *requests.__all__]
