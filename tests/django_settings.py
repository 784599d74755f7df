"""The smallest Django settings that send mail through outbox, for the tests.

Django allows one configuration per process, so every test module that needs Django
calls :func:`configure` (a no-op after the first call).
"""

from __future__ import annotations

SECRET_KEY = "outbox-tests-only"
EMAIL_BACKEND = "outbox.django.EmailBackend"
DEFAULT_FROM_EMAIL = "Shop <shop@example.com>"
USE_TZ = True
TIME_ZONE = "Australia/Sydney"
INSTALLED_APPS: list[str] = []


def configure() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(**{k: v for k, v in globals().items() if k.isupper()})
        django.setup()
