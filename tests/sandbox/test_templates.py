"""Templates: the real API's fields (``template_name``, caller-chosen ``id``) and rendering."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.conftest import email, field_error, ok

pytestmark = pytest.mark.integration


def template(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "template_name": "Welcome",
        "id": "welcome-v1",
        "subject": "Welcome, {{ name }}",
        "html_body": "<h1>Welcome, {{ name }}!</h1><p>{{ company }}</p>",
        "text_body": "Welcome, {{ name }}! Thanks for joining {{ company }}.",
        "template_variables": {"company": "Acme"},
        "tags": ["onboarding"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_add_view_edit_delete(api: httpx.Client) -> None:
    added = ok(api.post("/template/add", json=template()))
    assert added["id"] == "welcome-v1"
    assert added["template_name"] == "Welcome"

    view = ok(api.post("/template/view", json={"id": "welcome-v1"}))
    assert view["name"] == "Welcome"
    assert view["subject"] == "Welcome, {{ name }}"
    assert view["tags"] == ["onboarding"]
    assert view["template_variables"] == {"company": "Acme"}
    assert view["last_updated"]

    edited = ok(
        api.post(
            "/template/edit", json={"id": "welcome-v1", "new_id": "welcome-v2", "subject": "Hi"}
        )
    )
    assert edited["id"] == "welcome-v2"
    assert edited["subject"] == "Hi"
    assert field_error(api.post("/template/view", json={"id": "welcome-v1"}), 404) == "id"

    deleted = ok(api.post("/template/delete", json={"id": "welcome-v2"}))
    assert "welcome-v2" in deleted
    assert field_error(api.post("/template/view", json={"id": "welcome-v2"}), 404) == "id"
    assert field_error(api.post("/template/delete", json={"id": "welcome-v2"}), 404) == "id"
    assert field_error(api.post("/template/edit", json={"id": "welcome-v2"}), 404) == "id"


@pytest.mark.parametrize(
    ("body", "fieldname"),
    [
        (template(id=None), "id"),
        (template(id="abcd"), "id"),
        (template(id="a" * 25), "id"),
        (template(template_name=None), "template_name"),
        (template(template_name="n" * 65), "template_name"),
        (template(subject=None), "subject"),
        (template(html_body=None), "html_body"),
        (template(text_body=None), "text_body"),
        (template(text_body="{{#items}}x{{/item}}"), "text_body"),
        (template(template_variables=["x"]), "template_variables"),
        (template(tags="onboarding"), "tags"),
    ],
    ids=[
        "id missing",
        "id under 5",
        "id over 24",
        "name missing",
        "name over 64",
        "subject missing",
        "html_body missing",
        "text_body missing",
        "broken template syntax",
        "variables not an object",
        "tags not a list",
    ],
)
def test_invalid_template_is_refused(
    api: httpx.Client, body: dict[str, Any], fieldname: str
) -> None:
    assert field_error(api.post("/template/add", json=body)) == fieldname


def test_duplicate_id_is_refused(api: httpx.Client) -> None:
    ok(api.post("/template/add", json=template()))
    assert field_error(api.post("/template/add", json=template(template_name="Other"))) == "id"


def test_search_filters_and_pages(api: httpx.Client) -> None:
    for i in range(5):
        tags = ["even"] if i % 2 == 0 else ["odd"]
        ok(
            api.post(
                "/template/add", json=template(id=f"tmpl-{i}", template_name=f"T{i}", tags=tags)
            )
        )
    everything = ok(api.post("/template/search", json={}))
    assert everything["total_count"] == 5
    assert [t["id"] for t in everything["templates"]] == [f"tmpl-{i}" for i in range(5)]
    assert set(everything["templates"][0]) == {"name", "id", "subject", "tags", "last_updated"}
    assert everything["continue_token"] is None

    even = ok(api.post("/template/search", json={"tags": ["even"]}))
    assert [t["id"] for t in even["templates"]] == ["tmpl-0", "tmpl-2", "tmpl-4"]
    named = ok(api.post("/template/search", json={"search_terms": ["T3"]}))
    assert [t["id"] for t in named["templates"]] == ["tmpl-3"]
    fuzzy = ok(api.post("/template/search", json={"search_terms": ["tmpl"], "fuzzy_search": True}))
    assert fuzzy["total_count"] == 5

    seen: list[str] = []
    token = None
    while True:
        page = ok(api.post("/template/search", json={"page_size": 2, "continue_token": token}))
        seen += [t["id"] for t in page["templates"]]
        token = page["continue_token"]
        if token is None:
            break
    assert seen == [f"tmpl-{i}" for i in range(5)]


def test_send_with_template_renders_subject_and_bodies(api: httpx.Client, sandbox: Sandbox) -> None:
    ok(api.post("/template/add", json=template()))
    body = email(
        subject="ignored when a template is used",
        html_body=None,
        text_body=None,
        template_id="welcome-v1",
        template_data={"name": "<Jo>"},
    )
    ok(api.post("/email/send", json=body))
    [message] = sandbox.messages()
    assert message["template_id"] == "welcome-v1"
    assert message["subject"] == "Welcome, <Jo>"
    assert message["html_body"] == "<h1>Welcome, &lt;Jo&gt;!</h1><p>Acme</p>"
    assert message["text_body"] == "Welcome, <Jo>! Thanks for joining Acme."


def test_template_send_needs_no_subject_but_template_data_must_be_an_object(
    api: httpx.Client,
) -> None:
    ok(api.post("/template/add", json=template()))
    no_subject = email(subject=None, html_body=None, text_body=None, template_id="welcome-v1")
    ok(api.post("/email/send", json=no_subject))
    as_json_text = dict(no_subject, template_data='{"name": "Jo"}')
    ok(api.post("/email/send", json=as_json_text))
    broken = dict(no_subject, template_data="{not json")
    assert field_error(api.post("/email/send", json=broken)) == "template_data"
