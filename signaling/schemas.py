"""Payload schemas of the Socket.IO events, and the problem body every refusal shares."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class Strict(BaseModel):
    """A payload that refuses unknown fields."""

    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An error answer: a stable code, a message and optional details."""

    code: str
    message: str
    details: list[dict[str, str]] | None = None
    retry_after: int | None = Field(
        default=None, description="rate_limited: seconds until a new request would be counted"
    )


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
    # Bounded by TELECONSULT_MAX_SDP_BYTES (sdp_too_large), not here.
    sdp: str = Field(min_length=1)


class ResumeIn(Strict):
    """``resume``: take one's seat back on a new connection, with the resume token."""

    consult_id: str = Field(min_length=1, max_length=64)
    resume_token: str = Field(min_length=1, max_length=4096)


class SubscribeIn(Strict):
    """``subscribe``: receive without publishing; ``restart`` replaces lost connections."""

    restart: bool = False


class PublishIn(SessionDescriptionIn):
    """``publish``: an offer of the publisher connection, and what each of its sections carries.

    ``layers``: ``{mid: "low"}`` for the section that carries the camera's low layer.

    ``restart``: the offer is from new peer connections (the old ones failed): the server
    replaces this participant's publisher and subscriber connections.
    """

    sources: dict[str, Literal["camera", "microphone", "screen"]] | None = Field(
        default=None, max_length=8
    )
    layers: dict[str, Literal["low"]] | None = Field(default=None, max_length=1)
    restart: bool = False


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


class AudioOnlyIn(Strict):
    """``audio_only``: the participant chose to receive (and send) audio only, or video again."""

    enabled: StrictBool


class ModerateMuteIn(Strict):
    """``mute_participant``: a host silences one source of another participant."""

    participant_id: str = Field(min_length=1, max_length=64)
    source: Literal["microphone", "camera", "screen"]


class ChatIn(Strict):
    """``chat``: a message to everyone in the consult."""

    text: str = Field(min_length=1, max_length=2000)


class EmptyIn(Strict):
    """Events without a payload (``leave``, ``end``)."""
