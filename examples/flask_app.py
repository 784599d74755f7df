"""Queue a receipt from a Flask view, answer with its handle, and show its status.

    pip install smtp2go-outbox flask
    flask --app examples/flask_app.py run

``POST /receipts`` with ``{"to": "ann@example.org", "order": 42}`` answers 202 with the
send's id, whether it repeats an earlier request (``duplicate``) and where to read its
status; ``GET /sends/<id>`` answers its record. Redis, the broker and the workers are
configured as in the README.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, url_for

from outbox import (
    EnqueueError,
    IdempotencyConflict,
    RecordNotFound,
    Unavailable,
    ValidationError,
    send_email,
    status,
)

app = Flask(__name__)

Reply = tuple[dict[str, Any], int]


@app.post("/receipts")
def send_receipt() -> Reply:
    body: dict[str, Any] = request.get_json(silent=True) or {}
    order = body.get("order")
    if not isinstance(order, int) or isinstance(order, bool):
        # The order is the idempotency key: without one, two customers' receipts would
        # share a key, and the second would be answered with the first's handle.
        return {"errors": {"order": "an order number is required"}}, 422
    try:
        handle = send_email(
            "Shop <shop@example.com>",
            body.get("to", []),
            f"Your receipt for order {order}",
            text_body="Thanks for your order.",
            idempotency_key=f"receipt-{order}",  # a retried request sends nothing twice
        )
    except ValidationError as exc:
        return {"errors": exc.errors}, 422
    except IdempotencyConflict:
        return {"error": f"order {order} already had another receipt"}, 409
    except (EnqueueError, Unavailable):
        return {"error": "not queued; try again"}, 503
    where = url_for("send_status", handle_id=handle.id)
    return {"id": handle.id, "duplicate": handle.duplicate, "status": where}, 202


@app.get("/sends/<handle_id>")
def send_status(handle_id: str) -> Reply:
    try:
        return status(handle_id).model_dump(mode="json"), 200
    except RecordNotFound:
        return {"error": "no such send"}, 404
    except Unavailable:
        return {"error": "records unavailable; try again"}, 503
