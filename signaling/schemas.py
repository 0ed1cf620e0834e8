"""Payload schemas of the REST routes and Socket.IO events: every input is validated here."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rooms.identity import Role

Text = Field(min_length=1, max_length=200)
Subject = Field(min_length=1, max_length=128, pattern=r"^[\w.@:+-]+$")
HospitalCode = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")


class Strict(BaseModel):
    """A payload that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid")


# --- REST -------------------------------------------------------------------------------------


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
    participants: list[InviteeIn] = Field(min_length=1, max_length=15)


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


class Problem(BaseModel):
    """An error answer: a stable code, a message and optional details."""

    code: str
    message: str
    details: list[dict[str, str]] | None = None


class ProblemOut(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: Problem


# --- Socket.IO --------------------------------------------------------------------------------


class JoinIn(Strict):
    """``join``."""

    consult_id: str = Field(min_length=1, max_length=64)


class ParticipantRef(Strict):
    """``admit`` (and host actions on one participant)."""

    participant_id: str = Field(min_length=1, max_length=64)


class SessionDescriptionIn(Strict):
    """``subscriber_answer`` (an answer)."""

    type: Literal["offer", "answer"]
    sdp: str = Field(min_length=1, max_length=100_000)


class PublishIn(SessionDescriptionIn):
    """``publish``: an offer of the publisher connection, and what each of its sections carries."""

    sources: dict[str, Literal["camera", "microphone", "screen"]] | None = Field(
        default=None, max_length=8
    )


class IceCandidateIn(Strict):
    """``ice_candidate``: one trickled candidate of the client."""

    # Field names follow the browser's RTCIceCandidateInit.
    pc: Literal["publisher", "subscriber"]
    candidate: str = Field(max_length=1_000)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)


class MuteIn(Strict):
    """``mute``: the participant muted or unmuted one of their sources."""

    source: Literal["microphone", "camera", "screen"]
    muted: bool


class ModerateMuteIn(Strict):
    """``mute_participant``: a host silences one source of another participant."""

    participant_id: str = Field(min_length=1, max_length=64)
    source: Literal["microphone", "camera", "screen"]


class ChatIn(Strict):
    """``chat``: a message to everyone in the consult."""

    text: str = Field(min_length=1, max_length=2000)


class EmptyIn(Strict):
    """Events without a payload (``leave``, ``end``)."""
