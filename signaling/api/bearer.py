"""The caller of a REST request, from its ``Authorization: Bearer`` header.

A join link acts only on the routes of its own consult that accept one (declared
``join_link=True``); anywhere else it is refused, and the refusal is audited: it is someone
trying a link outside the consult it was given for.
"""

from __future__ import annotations

from aiohttp import web

from rooms.audit import AuditRecord
from rooms.errors import DomainError, IdentityTokenRequired, TokenMissing, WrongConsult
from rooms.identity import Identity
from signaling.context import services


def caller(request: web.Request) -> Identity:
    """The verified identity behind the request.

    :raises TokenMissing: without a bearer token; the verifier's errors for a bad one.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenMissing("An Authorization: Bearer token is needed")
    return services(request).verifier.verify(token.strip())


async def check_join_link(
    request: web.Request, identity: Identity, action: str, resource: str, consult_id: str | None
) -> None:
    """Refuse (and audit) a join link on a route it may not use.

    :param action: the route's operation, for the audit log.
    :param resource: the route's resource, for the audit log.
    :param consult_id: the consult of a route that accepts the join link of that consult only;
        ``None`` for a route that accepts no join link.
    :raises IdentityTokenRequired: on a route that needs the holder's own identity token.
    :raises WrongConsult: on the route of another consult.
    """
    if not identity.is_join_link:
        return
    refusal: DomainError
    if consult_id is None:
        refusal = IdentityTokenRequired(
            "A join link opens its consult only: this needs your own identity token"
        )
    elif identity.consult_id != consult_id:
        refusal = WrongConsult("This link is for another consult")
    else:
        return
    resource_id = next(iter(request.match_info.values()), request.path)
    record = AuditRecord(
        action,
        resource,
        resource_id,
        consult_id=identity.consult_id,
        hospital_id=identity.hospital,
        outcome=f"refused:{refusal.code}",
    )
    await services(request).clinical.audit.record(identity, record, request.remote)
    raise refusal
