"""Under Django's test set-up (``setup_test_environment``, as its runner and pytest-django
call it) a project that sends with outbox gets outbox's checks in its tests: ``send_mail``
goes through outbox's backend into ``outbox_fake``, and ``mail.outbox`` still fills."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.timeout(60)

CONFTEST = """
import django
import pytest
from django.conf import settings
from django.test.utils import setup_test_environment


def pytest_configure(config):
    settings.configure(
        SECRET_KEY="x",
        EMAIL_BACKEND={backend!r},
        DEFAULT_FROM_EMAIL="Shop <shop@example.com>",
        INSTALLED_APPS=[],
    )
    django.setup()
    setup_test_environment()


@pytest.fixture(autouse=True)
def _empty_mailbox():
    from django.core import mail

    mail.outbox = []  # as Django's TestCase and pytest-django do before each test
"""

TESTS = """
import pytest
from django.core import mail
from django.core.mail import send_mail

from outbox import ValidationError


def test_a_good_message_reaches_both(outbox_fake):
    assert send_mail("Welcome", "Hi Ann", None, ["ann@example.org"]) == 1
    (sent,) = outbox_fake.messages
    assert (sent.to, sent.subject, sent.sender) == (
        ["ann@example.org"], "Welcome", "Shop <shop@example.com>"
    )
    (message,) = mail.outbox
    assert message.outbox_handle.id == sent.id


def test_what_production_refuses_is_refused_here():
    with pytest.raises(ValidationError, match="sender"):
        send_mail("Oops", "body", "webmaster@localhost", ["ann@example.org"])
    assert mail.outbox == []
"""


def test_django_mail_goes_through_outbox_in_an_apps_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.format(backend="outbox.django.EmailBackend"))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_project_on_another_backend_keeps_locmem(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.format(backend="django.core.mail.backends.smtp.EmailBackend"))
    pytester.makepyfile(
        test_app="""
from django.core import mail
from django.core.mail import send_mail


def test_locmem_as_django_has_it():
    send_mail("Hi", "body", "webmaster@localhost", ["ann@example.org"])
    assert len(mail.outbox) == 1
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
