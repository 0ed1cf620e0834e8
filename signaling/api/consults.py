"""REST routes of consults: schedule, read, end, timeline."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from rooms.identity import Identity
from rooms.service import ConsultSpec, Invitee
from rooms.views import ConsultView
from signaling.api.bearer import caller
from signaling.context import Services, services
from signaling.errors import json_body
from signaling.events import LIVE_CONSULTS
from signaling.metrics import CONSULTS_SCHEDULED
from signaling.schemas import ConsultCreate, ConsultOut, ParticipantOut

routes = web.RouteTableDef()


def consult_out(consult: ConsultView, join_urls: dict[str, str] | None = None) -> ConsultOut:
    """The REST form of a consult, with join links when they were just minted."""
    return ConsultOut(
        **consult.as_dict(),
        participants=[
            ParticipantOut(**p.as_dict(), join_url=(join_urls or {}).get(p.id))
            for p in consult.participants
        ],
    )


def join_urls(svc: Services, consult: ConsultView) -> dict[str, str]:
    """A join link per participant, each carrying a short-lived token for that consult only."""
    if svc.issuer is None:
        return {}
    base = svc.settings.base_url()
    ttl = svc.settings.join_token_ttl_seconds
    urls = {}
    for participant in consult.participants:
        identity = Identity(
            participant.sub, participant.name, participant.role, participant.hospital, consult.id
        )
        token = svc.issuer.mint(identity, ttl)
        urls[participant.id] = f"{base}/join/{quote(consult.id)}?token={token}"
    return urls


@routes.post("/api/consults")
async def schedule_consult(request: web.Request) -> web.Response:
    """Schedule a consult; answer 201 with a join link per participant."""
    identity = caller(request)
    body = ConsultCreate.model_validate(await json_body(request))
    spec = ConsultSpec(
        kind=body.kind,
        hospital=body.hospital,
        title=body.title,
        scheduled_at=body.scheduled_at,
        host=Invitee(body.host.sub, body.host.name, body.host.role, body.host.hospital),
        participants=[Invitee(p.sub, p.name, p.role, p.hospital) for p in body.participants],
    )
    svc = services(request)
    consult = await svc.consults.schedule(identity, spec)
    CONSULTS_SCHEDULED.inc()
    out = consult_out(consult, join_urls(svc, consult))
    return web.json_response(text=out.model_dump_json(), status=201)


@routes.get("/api/consults/{consult_id}")
async def read_consult(request: web.Request) -> web.Response:
    """A consult and its participants."""
    consult = await services(request).consults.get(
        caller(request), request.match_info["consult_id"]
    )
    return web.json_response(text=consult_out(consult).model_dump_json())


@routes.post("/api/consults/{consult_id}/end")
async def end_consult(request: web.Request) -> web.Response:
    """End a consult for everyone connected to it."""
    live = request.app[LIVE_CONSULTS]
    consult = await live.end_consult(caller(request), request.match_info["consult_id"])
    return web.json_response(text=consult_out(consult).model_dump_json())


@routes.get("/api/consults/{consult_id}/timeline")
async def consult_timeline(request: web.Request) -> web.Response:
    """The consult's timeline: who did what, when."""
    entries = await services(request).consults.timeline(
        caller(request), request.match_info["consult_id"]
    )
    return web.json_response({"events": [entry.as_dict() for entry in entries]})
