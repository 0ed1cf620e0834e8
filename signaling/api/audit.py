"""REST route of the access audit log: who read or changed which record, allowed or refused."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import services

routes = ApiRoutes("audit")


class AuditQuery(BaseModel):
    """Filters of ``GET /api/audit``; ``hospital`` defaults to the caller's own."""

    # No longer than the columns they filter (PostgreSQL refuses a longer value outright).
    hospital: str | None = Field(default=None, max_length=64)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=128)
    actor_hospital: str | None = Field(
        default=None,
        max_length=64,
        description="with `actor`: the actor's hospital (a person is hospital and sub)",
    )
    limit: int = Field(default=200, description="at most this many entries (1 to 1000)")


class AuditActorOut(BaseModel):
    """Who acted, as their token said."""

    sub: str
    role: str
    hospital: str


class AuditEntryOut(BaseModel):
    """One access: when (ISO 8601), who, what on which resource, and whether it was allowed."""

    id: int
    at: str
    actor: AuditActorOut
    action: str
    resource_type: str
    resource_id: str
    consult_id: str | None
    outcome: str
    client_address: str | None
    detail: dict[str, Any]


class AuditLogOut(BaseModel):
    """Audit entries, newest first."""

    entries: list[AuditEntryOut]


@routes.get(
    "/api/audit",
    query=AuditQuery,
    response=AuditLogOut,
    problems=(403,),
)
async def audit_log(request: web.Request, identity: Identity, query: AuditQuery) -> AuditLogOut:
    """The audit log of a hospital, the caller's by default (its administrators), newest first."""
    recordings = services(request).recordings
    hospital = identity.hospital if query.hospital is None else query.hospital
    await recordings.access.check_admin(identity, hospital, "view_audit", client_address(request))
    entries = await recordings.audit.entries(
        hospital_id=hospital,
        resource_type=query.resource_type,
        resource_id=query.resource_id,
        actor_sub=query.actor,
        actor_hospital=query.actor_hospital,
        limit=min(max(query.limit, 1), 1000),
    )
    return AuditLogOut(
        entries=[
            AuditEntryOut(
                id=e.id,
                at=e.at.isoformat(),
                actor=AuditActorOut(sub=e.actor_sub, role=e.actor_role, hospital=e.actor_hospital),
                action=e.action,
                resource_type=e.resource_type,
                resource_id=e.resource_id,
                consult_id=e.consult_id,
                outcome=e.outcome,
                client_address=e.client_address,
                detail=e.detail,
            )
            for e in entries
        ]
    )
