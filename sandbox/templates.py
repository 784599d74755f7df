"""The template endpoints: ``template/add``, ``edit``, ``delete``, ``view`` and ``search``.

The real API's fields (OpenAPI 3.0.4): ``template/add`` takes ``template_name`` (1-64),
``id`` (5-24 characters, chosen by the caller), ``subject``, ``html_body`` and
``text_body`` (all required), ``template_variables`` and ``tags``. Templates render with
Mustache (``{{ name }}``), as the service's editor does.
"""

from __future__ import annotations

import time
from typing import Any

import pystache
from pystache.parser import ParsingError

from outbox.sandbox.common import (
    DEFAULT_PAGE,
    Call,
    Handler,
    Sandbox,
    decode_token,
    encode_token,
    not_found,
    page_size,
)
from outbox.sandbox.records import Template
from outbox.sandbox.state import SandboxState
from outbox.sandbox.validation import invalid, optional_str, string_list

__all__ = ["TEMPLATES"]


def _template_text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = optional_str(body, name)
    if value is None:
        if required:
            raise invalid(name, f"{name} is required")
        return None
    try:
        pystache.parse(value)
    except ParsingError as exc:
        raise invalid(name, f"{name} is not a valid template: {exc}") from None
    return value


def _template_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not 5 <= len(value) <= 24 or not value.strip():
        raise invalid(name, f"{name} must be 5 to 24 characters")
    return value


def _template_fields(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    name = body.get("template_name")
    if name is not None or required:
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise invalid("template_name", "template_name must be 1 to 64 characters")
        fields["name"] = name
    for key in ("subject", "html_body", "text_body"):
        value = _template_text(body, key, required=required)
        if value is not None:
            fields[key] = value
    variables = body.get("template_variables")
    if variables is not None:
        if not isinstance(variables, dict):
            raise invalid("template_variables", "template_variables must be an object")
        fields["template_variables"] = variables
    tags = string_list(body, "tags")
    if tags is not None:
        fields["tags"] = tags
    return fields


def _template_answer(template: Template) -> dict[str, Any]:
    return {
        "template_name": template.name,
        "id": template.id,
        "subject": template.subject,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "template_variables": template.template_variables,
        "tags": template.tags,
        "last_updated": template.last_updated,
    }


def _template(state: SandboxState, body: dict[str, Any]) -> Template:
    template_id = body.get("id")
    if not isinstance(template_id, str) or not template_id:
        raise invalid("id", "id is required")
    template = state.templates.get(template_id)
    if template is None:
        raise not_found("id", f"template {template_id!r} does not exist")
    return template


def _now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


def template_add(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    state = sb.state
    template_id = _template_id(body.get("id"), "id")
    fields = _template_fields(body, required=True)
    if template_id in state.templates:
        raise invalid("id", f"a template with id {template_id!r} already exists")
    template = Template(
        id=template_id,
        name=fields["name"],
        subject=fields["subject"],
        html_body=fields["html_body"],
        text_body=fields["text_body"],
        template_variables=fields.get("template_variables", {}),
        tags=fields.get("tags", []),
        last_updated=_now_text(),
    )
    state.templates[template_id] = template
    return _template_answer(template)


def template_edit(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    state = sb.state
    template = _template(state, body)
    new_id = None if body.get("new_id") is None else _template_id(body["new_id"], "new_id")
    fields = _template_fields(body, required=False)
    if new_id is not None and new_id != template.id:
        if new_id in state.templates:
            raise invalid("new_id", f"a template with id {new_id!r} already exists")
        del state.templates[template.id]
        template.id = new_id
        state.templates[new_id] = template
    for key, value in fields.items():
        setattr(template, key, value)
    template.last_updated = _now_text()
    return _template_answer(template)


def template_delete(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    template = _template(sb.state, body)
    del sb.state.templates[template.id]
    return f"Successfully deleted template '{template.id}'"


def template_view(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    template = _template(sb.state, body)
    return {
        "name": template.name,
        "id": template.id,
        "subject": template.subject,
        "tags": template.tags,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "template_variables": template.template_variables,
        "last_updated": template.last_updated,
    }


def template_search(sb: Sandbox, body: dict[str, Any], call: Call) -> Any:
    terms = string_list(body, "search_terms") or []
    tags = set(string_list(body, "tags") or [])
    fuzzy = bool(body.get("fuzzy_search", False))
    direction = body.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise invalid("sort_direction", "sort_direction must be asc or desc")
    size = page_size(body, "page_size", default=DEFAULT_PAGE, maximum=1000)
    offset = decode_token(body)

    def matches(template: Template) -> bool:
        if tags and not tags.intersection(template.tags):
            return False
        if not terms:
            return True
        fields = [template.name, template.id, template.subject, *template.tags]
        if fuzzy:
            return any(t.lower() in f.lower() for t in terms for f in fields)
        return any(t in fields for t in terms)

    found = sorted(
        (t for t in sb.state.templates.values() if matches(t)),
        key=lambda t: (t.name.lower(), t.id),
        reverse=direction == "desc",
    )
    page = found[offset : offset + size]
    more = offset + size < len(found)
    return {
        "templates": [
            {
                "name": t.name,
                "id": t.id,
                "subject": t.subject,
                "tags": t.tags,
                "last_updated": t.last_updated,
            }
            for t in page
        ],
        "total_count": len(found),
        "continue_token": encode_token(offset + size) if more else None,
    }


TEMPLATES: dict[str, Handler] = {
    "template/add": template_add,
    "template/edit": template_edit,
    "template/delete": template_delete,
    "template/view": template_view,
    "template/search": template_search,
}
