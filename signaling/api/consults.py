"""REST routes of consults: schedule, read, end, timeline; and their schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field

from clinical.access import audited
from rooms.identity import Identity, Role
from rooms.service import ConsultSpec, Invitee
from rooms.views import ConsultView
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import Services, services
from signaling.events import LIVE_CONSULTS
from signaling.limits import TooManyParticipants
from signaling.metrics import CONSULTS_SCHEDULED
from signaling.schemas import Strict

Text = Field(min_length=1, max_length=200)
Subject = Field(min_length=1, max_length=128, pattern=r"^[\w.@:+-]+$")
HospitalCode = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")


class InviteeIn(Strict):
    """Someone invited to a consult."""

    sub: str = Subject
    name: str = Text
    role: Role
    hospital: str | None = Field(default=None, max_length=64, pattern=r"^[\w.-]+$")


class HostIn(Strict):
    """The consult's host (a doctor, or an expert for a conference)."""

    sub: str = Subject
    name: str = Text
    role: Role = Role.DOCTOR
    hospital: str | None = Field(default=None, max_length=64, pattern=r"^[\w.-]+$")


class ConsultCreate(Strict):
    """``POST /api/consults``: schedule a consult."""

    kind: Literal["visit", "referral", "conference"]
    hospital: str = HospitalCode
    title: str = Text
    scheduled_at: AwareDatetime
    host: HostIn
    # Bounded by TELECONSULT_MAX_PARTICIPANTS_PER_CONSULT (too_many_participants); this only
    # keeps a request's body small.
    participants: list[InviteeIn] = Field(min_length=1, max_length=200)


class ParticipantOut(BaseModel):
    """A participant in REST answers; ``join_url`` only in the answer to scheduling."""

    participant_id: str
    sub: str
    name: str
    role: Role
    hospital: str
    is_host: bool
    join_url: str | None = None


class ConsultOut(BaseModel):
    """A consult in REST answers."""

    id: str
    kind: str
    hospital: str
    title: str
    state: Literal["scheduled", "lobby", "live", "ended"]
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    participants: list[ParticipantOut]


class ActorOut(BaseModel):
    """Who did something: a person is their hospital and their ``sub`` there (``hospital`` is
    null on entries written before it was kept)."""

    sub: str
    name: str
    hospital: str | None = None


class TimelineEventOut(BaseModel):
    """One event of a consult's timeline: when (ISO 8601), who, what, and its details."""

    at: str
    actor: ActorOut
    kind: str
    detail: dict[str, Any]


class TimelineOut(BaseModel):
    """A consult's timeline, oldest event first."""

    events: list[TimelineEventOut]


routes = ApiRoutes("consults")


def consult_out(consult: ConsultView, join_urls: dict[str, str] | None = None) -> ConsultOut:
    """The REST form of a consult, with join links when they were just minted."""
    return ConsultOut(
        **consult.as_dict(),
        participants=[
            ParticipantOut(**p.as_dict(), join_url=(join_urls or {}).get(p.id))
            for p in consult.participants
        ],
    )


#: Who has no identity at the hospital, and so joins with a link that carries a token.
LINK_HOLDERS = frozenset({Role.PATIENT})


def join_urls(svc: Services, consult: ConsultView) -> dict[str, str]:
    """A join link per participant (docs/security.md).

    A patient's link carries a short-lived join token for this consult only; staff get the page's
    address alone and open it with their own identity token (the portal adds ``#token=…``), so
    nothing the scheduler receives can act as them.
    """
    base = svc.settings.base_url()
    ttl = svc.settings.join_token_ttl_seconds
    urls = {}
    for participant in consult.participants:
        url = f"{base}/join/{quote(consult.id)}"
        if participant.role in LINK_HOLDERS:
            identity = Identity(
                participant.sub,
                participant.name,
                participant.role,
                participant.hospital,
                consult.id,
            )
            url += f"?token={svc.join_links.mint(identity, ttl)}"
        urls[participant.id] = url
    return urls


@routes.post(
    "/api/consults",
    body=ConsultCreate,
    response=ConsultOut,
    status=201,
    description="the consult, with a join_url per participant",
    problems=(403,),
    rate_limit="scheduling",
)
async def schedule_consult(
    request: web.Request, identity: Identity, body: ConsultCreate
) -> ConsultOut:
    """Schedule a consult (coordinator, doctor or hospital system), with a join link each."""
    svc = services(request)
    bound = svc.settings.max_participants_per_consult
    if len(body.participants) + 1 > bound:
        raise TooManyParticipants(f"A consult has at most {bound} participants, its host included")
    spec = ConsultSpec(
        kind=body.kind,
        hospital=body.hospital,
        title=body.title,
        scheduled_at=body.scheduled_at,
        host=Invitee(body.host.sub, body.host.name, body.host.role, body.host.hospital),
        participants=[Invitee(p.sub, p.name, p.role, p.hospital) for p in body.participants],
    )
    consult = await svc.consults.schedule(identity, spec)
    CONSULTS_SCHEDULED.inc()
    return consult_out(consult, join_urls(svc, consult))


@routes.get(
    "/api/consults/{consult_id}",
    response=ConsultOut,
    description="the consult",
    problems=(403, 404),
    join_link=True,
)
async def read_consult(request: web.Request, identity: Identity, consult_id: str) -> ConsultOut:
    """A consult and its participants (audited: who sees a patient's consults is health data)."""
    svc = services(request)
    address = client_address(request)
    async with audited(
        svc.clinical.audit, identity, "view", "consult", consult_id, address
    ) as scope:
        scope.about(consult_id, identity.hospital)  # a refusal: the caller's hospital sees it
        consult = await svc.consults.get(identity, consult_id)
        scope.about(consult.id, consult.hospital)
    return consult_out(consult)


@routes.post(
    "/api/consults/{consult_id}/end",
    response=ConsultOut,
    description="the ended consult",
    problems=(403, 404, 409),
)
async def end_consult(request: web.Request, identity: Identity, consult_id: str) -> ConsultOut:
    """End a consult for everyone connected to it (its host or hospital staff)."""
    return consult_out(await request.app[LIVE_CONSULTS].end_consult(identity, consult_id))


@routes.get(
    "/api/consults/{consult_id}/timeline",
    response=TimelineOut,
    description="the events, oldest first",
    problems=(403, 404),
    join_link=True,
)
async def consult_timeline(
    request: web.Request, identity: Identity, consult_id: str
) -> TimelineOut:
    """The consult's timeline: who did what, when, chat included (audited)."""
    svc = services(request)
    address = client_address(request)
    async with audited(
        svc.clinical.audit, identity, "view", "timeline", consult_id, address
    ) as scope:
        scope.about(consult_id, identity.hospital)  # a refusal: the caller's hospital sees it
        consult = await svc.consults.get(identity, consult_id)
        scope.about(consult.id, consult.hospital)
        entries = await svc.consults.timeline(identity, consult_id)
    return TimelineOut.model_validate({"events": [entry.as_dict() for entry in entries]})
