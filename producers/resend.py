"""Send again, to the recipients of a send whose fate is worth another try.

The batch's ledger says what became of each recipient. Only those whose request failed
or died (the cause, a wrong key or an unverified sender, may be fixed by now) or whose
mailbox soft-bounced are sent to again, in one new batch with the same message, each in
the role they had (to, cc, bcc); never a recipient that was delivered, refused before
sending (suppressed), hard-bounced, rejected or complained. The new batch is checked
against the suppression list again, like any send.
"""

from __future__ import annotations

from outbox.boundary import public_call
from outbox.chunking import MAX_RECIPIENTS, address_key
from outbox.core.errors import RecordNotFound, ValidationError
from outbox.core.store.chunks import ChunkSlice, chunk_id_for
from outbox.core.wire import shape
from outbox.enqueue import enqueue
from outbox.handle import RETRYABLE_FATES, Handle
from outbox.options import Options, check_options
from outbox.send import email_chunks
from outbox.worker.runtime import get_runtime

__all__ = ["retry_failed"]


@public_call
def retry_failed(handle_id: str, *, idempotency_key: str | None = None) -> Handle | None:
    """One new batch with only the recipients worth trying again; ``None`` when there is
    nobody to try again. ``idempotency_key`` makes a repeated call enqueue nothing."""
    rt = get_runtime()
    batches = rt.store.batches
    batch = batches.stored_batch(handle_id)
    payload = batches.payload(handle_id)
    if batch is None or payload is None:
        raise RecordNotFound(f"no record {handle_id!r} (unknown, or expired)")
    wanted = {e.recipient for e in batches.ledger(handle_id) if e.state in RETRYABLE_FATES}
    if not wanted:
        return None
    kind = batch.kind
    stored = batches.chunks([chunk_id_for(handle_id, i) for i in range(batch.chunks)])
    errors: dict[str, str] = {}
    options = check_options(
        errors,
        idempotency_key=idempotency_key,
        send_at=None,
        callback=None,
        retention=rt.settings.retention_seconds,
    )
    if errors:
        raise ValidationError(errors)
    refused: list[tuple[str, str]] = []
    lists = shape(kind).lists  # where the kind's payload names its recipients
    if not lists:  # inside the message (MIME): a chunk as it was, if anyone is wanted
        chunks: list[ChunkSlice] = [
            (chunk.recipients, {}) for chunk, _, _ in stored if wanted & _keys(chunk.recipients)
        ]
    elif len(lists) == 1:  # one list (SMS's numbers): regrouped, at most 100 a chunk
        (field,) = lists
        numbers = [n for chunk, _, _ in stored for n in chunk.recipients if n in wanted]
        chunks = [
            (numbers[i : i + MAX_RECIPIENTS], {field: numbers[i : i + MAX_RECIPIENTS]})
            for i in range(0, len(numbers), MAX_RECIPIENTS)
        ]
    else:  # an email's roles: each recipient in the one they had
        roles: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
        for chunk, _, _ in stored:
            for role, addresses in roles.items():
                addresses += [a for a in chunk.fields.get(role, []) if address_key(a) in wanted]
        if not roles["to"]:  # the API needs a To: the others become it
            roles = {"to": [*roles["cc"], *roles["bcc"]], "cc": [], "bcc": []}
        chunks, refused = email_chunks(roles["to"], roles["cc"], roles["bcc"], errors)
        if errors:
            raise ValidationError(errors)
    if not chunks and not refused:
        return None
    base = {k: v for k, v in payload.items() if k not in lists}
    return enqueue(kind, base, chunks, Options(options.idempotency_key), refused=refused)


def _keys(addresses: list[str]) -> set[str]:
    return {address_key(a) for a in addresses}
