"""REST routes of the outbox for a hospital's administrators: list entries, retry a failed one."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from clinical.access import audited
from outbox.queue import entry_as_dict
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import services


class OutboxQuery(BaseModel):
    """Filters of ``GET /api/outbox``."""

    status: str | None = Field(
        default=None, description="pending, delivered or failed (failed ones need help)"
    )


class OutboxEntryOut(BaseModel):
    """An outbox entry as an admin sees it (never the clinical payload)."""

    id: str
    idempotency_key: str
    kind: str
    document_id: str
    consult_id: str
    hospital: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    delivered_at: str | None


routes = ApiRoutes("outbox")


@routes.get(
    "/api/outbox",
    query=OutboxQuery,
    response=list[OutboxEntryOut],
    description="newest first",
    problems=(403,),
)
async def list_outbox(
    request: web.Request, identity: Identity, query: OutboxQuery
) -> list[OutboxEntryOut]:
    """Outbox entries of the admin's hospital, newest first (?status=failed: those needing help)."""
    clinical = services(request).clinical
    async with audited(
        clinical.audit, identity, "list", "outbox", identity.hospital, client_address(request)
    ) as scope:
        scope.hospital_id = identity.hospital
        entries = await services(request).outbox_admin.entries(identity, query.status)
    return [OutboxEntryOut.model_validate(entry_as_dict(entry)) for entry in entries]


@routes.post(
    "/api/outbox/{entry_id}/retry",
    response=OutboxEntryOut,
    description="the entry, pending again",
    problems=(403, 404, 409),
)
async def retry_outbox_entry(
    request: web.Request, identity: Identity, entry_id: str
) -> OutboxEntryOut:
    """Put a failed entry back in the delivery queue (admin)."""
    clinical = services(request).clinical
    async with audited(
        clinical.audit, identity, "retry", "outbox", entry_id, client_address(request)
    ) as scope:
        entry = await services(request).outbox_admin.retry(identity, entry_id)
        scope.about(entry.consult_id, entry.hospital_id)
    return OutboxEntryOut.model_validate(entry_as_dict(entry))
