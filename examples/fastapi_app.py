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

from outbox import EnqueueError, Record, RecordNotFound, ValidationError, send_email, status

app = FastAPI()


class Receipt(BaseModel):
    to: str
    order: int


class Queued(BaseModel):
    id: str
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
    except EnqueueError as exc:
        raise HTTPException(503, "not queued; try again") from exc
    return Queued(id=handle.id, status=request.url_for("send_status", handle_id=handle.id).path)


@app.get("/sends/{handle_id}")
def send_status(handle_id: str) -> Record:
    try:
        return status(handle_id)
    except RecordNotFound as exc:
        raise HTTPException(404, "no such send") from exc
