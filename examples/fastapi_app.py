"""Queue a receipt from a FastAPI endpoint, answer with its handle, and show its status.

    pip install smtp2go-outbox fastapi uvicorn
    uvicorn examples.fastapi_app:app

The endpoints are plain ``def``: FastAPI runs them in its thread pool, so the blocking
Redis and broker calls of ``send_email`` never hold up the event loop. Redis, the broker
and the workers are configured as in the README.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from outbox import (
    EnqueueError,
    IdempotencyConflict,
    Record,
    RecordNotFound,
    Unavailable,
    ValidationError,
    send_email,
    status,
)

app = FastAPI()


class Receipt(BaseModel):
    to: str
    order: int


class Queued(BaseModel):
    id: str
    #: True when this repeats an earlier request for the same order (nothing new queued).
    duplicate: bool
    #: Where to read the send's record.
    status: str


@app.post("/receipts", status_code=202)
def send_receipt(receipt: Receipt, request: Request) -> Queued:
    try:
        handle = send_email(
            "Shop <shop@example.com>",
            receipt.to,
            f"Your receipt for order {receipt.order}",
            text_body="Thanks for your order.",
            idempotency_key=f"receipt-{receipt.order}",  # a retried request sends nothing twice
        )
    except ValidationError as exc:
        raise HTTPException(422, {"errors": exc.errors}) from exc
    except IdempotencyConflict as exc:
        raise HTTPException(409, f"order {receipt.order} already had another receipt") from exc
    except (EnqueueError, Unavailable) as exc:
        raise HTTPException(503, "not queued; try again") from exc
    where = request.url_for("send_status", handle_id=handle.id).path
    return Queued(id=handle.id, duplicate=handle.duplicate, status=where)


@app.get("/sends/{handle_id}")
def send_status(handle_id: str) -> Record:
    try:
        return status(handle_id)
    except RecordNotFound as exc:
        raise HTTPException(404, "no such send") from exc
    except Unavailable as exc:
        raise HTTPException(503, "records unavailable; try again") from exc
