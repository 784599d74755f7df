"""A fresh ``django-admin startproject``, set up as the README's Django section says:
``manage.py check`` names Django's own senders first, and once they are set, a live
site's 500 reaches the admins through outbox, a real worker and the sandbox.

Django's ``AdminEmailHandler`` sends with ``fail_silently=True``: with the defaults
(``root@localhost``) outbox refuses the sender and the report would be lost, which is
what the system check exists to say before a site goes live."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.procs import wait_until
from tests.conftest import Sandbox
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.integration

DJANGO_ADMIN = str(Path(sys.executable).with_name("django-admin"))

#: The README's lines, then what a live site sets beside them.
README_SETTINGS = """
EMAIL_BACKEND = "outbox.django.EmailBackend"
INSTALLED_APPS = [*INSTALLED_APPS, "outbox.django"]
"""
SENDERS = """
DEFAULT_FROM_EMAIL = "Shop <shop@example.com>"
SERVER_EMAIL = "errors@example.com"
"""
LIVE = """
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
ADMINS = [("Ops", "ops@example.org")]
"""
BROKEN_VIEW = """
from django.urls import path


def broken(request):
    raise RuntimeError("the checkout fell over")


urlpatterns = [*urlpatterns, path("broken/", broken)]
"""
#: A request to the broken view, as a client would make it (Django's test client runs
#: the whole handler: the 500 and its report to the admins).
REQUEST = """
from django.test import Client

answer = Client(raise_request_exception=False).get("/broken/")
print("status", answer.status_code)
"""


def _manage(site: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(180)
def test_a_fresh_project_set_up_as_the_readme_says_sends_its_error_emails(
    fleet: Fleet, sandbox: Sandbox, tmp_path: Path
) -> None:
    subprocess.run([DJANGO_ADMIN, "startproject", "shop", str(tmp_path)], check=True, timeout=60)
    settings = tmp_path / "shop" / "settings.py"
    settings.write_text(settings.read_text() + README_SETTINGS + LIVE)
    env = {**os.environ, **fleet.env(), "DJANGO_SETTINGS_MODULE": "shop.settings"}
    env.pop("PYTHONPATH", None)  # the project as its own: only the installed package

    # Django's defaults: the check names both senders before anything is sent.
    checked = _manage(tmp_path, env, "check")
    assert checked.returncode != 0
    assert "outbox.E001" in checked.stderr
    assert "outbox.E002" in checked.stderr
    assert "webmaster@localhost" in checked.stderr

    settings.write_text(settings.read_text() + SENDERS)
    checked = _manage(tmp_path, env, "check")
    assert checked.returncode == 0, checked.stderr

    urls = tmp_path / "shop" / "urls.py"
    urls.write_text(urls.read_text() + BROKEN_VIEW)
    fleet.start(concurrency=4)
    answered = _manage(tmp_path, env, "shell", "-c", REQUEST)
    assert "status 500" in answered.stdout, answered.stdout + answered.stderr

    def reported() -> list[dict[str, object]]:
        return [m for m in sandbox.messages() if "ops@example.org" in str(m.get("to"))]

    wait_until(lambda: len(reported()) == 1, timeout=60, what="the error email at the API")
    [report] = reported()
    assert "errors@example.com" in str(report["sender"])
    assert "/broken/" in str(report["subject"])
