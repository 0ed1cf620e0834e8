"""REST routes of the hospitals' records (tenants): read and write one, list them (region).

Only an administrator of the hospital or of the region may; every read and write, allowed or
refused, is written to the access audit log. Secrets are never answered (``token_set`` etc.).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rooms.audit import AuditRecord
from rooms.errors import DomainError
from rooms.hospitals import HospitalAdminRequired, HospitalNotFound, HospitalProfile
from rooms.identity import Identity, administers
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import services

routes = ApiRoutes("hospitals")

#: The longest hospital code (the ``hospitals`` table's key).
MAX_CODE_LENGTH = 64


async def _audit(
    request: web.Request,
    identity: Identity,
    action: str,
    code: str,
    error: DomainError | None = None,
) -> None:
    outcome = "allowed" if error is None else f"refused:{error.code}"
    code = code[:MAX_CODE_LENGTH]  # the audit log's column; a longer code is refused anyway
    await services(request).clinical.audit.record(
        identity,
        AuditRecord(action, "hospital", code, None, code, outcome),
        client_address(request),
    )


async def _check_admin(request: web.Request, identity: Identity, action: str, code: str) -> None:
    """Refuse (and audit) anyone but an administrator of hospital ``code`` or of the region."""
    region = services(request).settings.region_code
    if len(code) > MAX_CODE_LENGTH or not administers(identity, code, region):
        error = HospitalAdminRequired("Only an administrator of this hospital may do this")
        await _audit(request, identity, action, code, error)
        raise error


@routes.get("/api/hospitals", response=list[dict[str, Any]], problems=(403,))
async def list_hospitals(request: web.Request, identity: Identity) -> list[dict[str, Any]]:
    """Every hospital's record, without secrets (an administrator of the region)."""
    region = services(request).settings.region_code
    await _check_admin(request, identity, "list", region)
    entries = await services(request).hospitals.all()
    await _audit(request, identity, "list", "*")
    return [entry.public() for entry in entries]


@routes.get("/api/hospitals/{code}", response=dict[str, Any], problems=(403, 404))
async def read_hospital(request: web.Request, identity: Identity, code: str) -> dict[str, Any]:
    """A hospital's record, without secrets (its administrators, the region's)."""
    await _check_admin(request, identity, "view", code)
    entry = await services(request).hospitals.get(code)
    if entry is None:
        error = HospitalNotFound("This hospital has no record: the server's settings apply")
        await _audit(request, identity, "view", code, error)
        raise error
    await _audit(request, identity, "view", code)
    return entry.public()


@routes.put(
    "/api/hospitals/{code}",
    body=HospitalProfile,
    response=dict[str, Any],
    problems=(403, 409),
)
async def write_hospital(
    request: web.Request, identity: Identity, code: str, body: HospitalProfile
) -> dict[str, Any]:
    """Create or replace a hospital's record; a secret left out keeps the stored one
    (its administrators, the region's; audited)."""
    await _check_admin(request, identity, "update", code)
    svc = services(request)
    try:
        entry = await svc.hospitals.put(code, body, by=identity.sub)
    except DomainError as error:
        await _audit(request, identity, "update", code, error)
        raise
    await _audit(request, identity, "update", code)
    if svc.verifier.hospital_issuers is not None:
        await svc.verifier.hospital_issuers.reload()
    return entry.public()
