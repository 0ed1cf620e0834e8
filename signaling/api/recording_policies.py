"""REST routes of each hospital's recording policy: retention and rubric, and retention now."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import services
from signaling.schemas import Strict

routes = ApiRoutes("recording-policies")


class PolicyIn(Strict):
    """A hospital's recording policy."""

    #: At least a day: a recording is never deleted while its consult may still be going on.
    retention_days: int = Field(ge=1, le=36500)
    rubric: list[str] = Field(min_length=1, max_length=20)


class PolicyOut(BaseModel):
    """A hospital's recording policy: days a recording is kept, and the review rubric."""

    hospital: str
    retention_days: int
    rubric: list[str]


class RetentionOut(BaseModel):
    """The recordings deleted (each deletion audited), and those whose deletion failed (kept
    in the catalogue and tried again at the next sweep)."""

    deleted: list[str]
    failed: list[str]


@routes.get(
    "/api/recording-policies/{hospital}",
    response=PolicyOut,
    problems=(403,),
)
async def read_policy(request: web.Request, identity: Identity, hospital: str) -> PolicyOut:
    """A hospital's retention days and review rubric (its administrators)."""
    recordings = services(request).recordings
    await recordings.access.check_admin(identity, hospital, "view_policy", client_address(request))
    policy = await recordings.policies.policy(hospital)
    return PolicyOut.model_validate(policy.as_dict())


@routes.put(
    "/api/recording-policies/{hospital}",
    body=PolicyIn,
    response=PolicyOut,
    problems=(403,),
)
async def set_policy(
    request: web.Request, identity: Identity, hospital: str, body: PolicyIn
) -> PolicyOut:
    """Set a hospital's retention days and review rubric (its administrators; audited)."""
    recordings = services(request).recordings
    await recordings.access.check_admin(identity, hospital, "set_policy", client_address(request))
    policy = await recordings.policies.set_policy(
        hospital, body.retention_days, body.rubric, identity.sub
    )
    await recordings.access.audit_admin(
        identity,
        hospital,
        "set_policy",
        client_address=client_address(request),
        detail=policy.as_dict(),
    )
    return PolicyOut.model_validate(policy.as_dict())


@routes.post(
    "/api/recording-policies/{hospital}/retention",
    response=RetentionOut,
    problems=(403,),
)
async def apply_retention(request: web.Request, identity: Identity, hospital: str) -> RetentionOut:
    """Delete the hospital's expired recordings now (each deletion audited).

    The server also does it every hour.
    """
    recordings = services(request).recordings
    await recordings.access.check_admin(
        identity, hospital, "apply_retention", client_address(request)
    )
    sweep = await recordings.retention.apply(datetime.now(UTC), hospital)
    return RetentionOut(deleted=sweep.deleted, failed=sweep.failed)
