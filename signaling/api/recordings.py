"""REST routes of recordings: catalogue, manifest, files (HTTP Range), timeline, scores, comments.

Every request about a recording is authorised and audited by :mod:`recordings.access`, refusals
too. The manifest answer carries, per file, a playback link (:mod:`recordings.links`) for that
viewer only; following the link is authorised and audited like any request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field

from media.recording import TrackEntry
from recordings.access import may_review
from recordings.catalogue import RecordingFilter, RecordingView
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.bearer import caller
from signaling.api.consults import ActorOut, TimelineEventOut
from signaling.api.declare import ApiRoutes
from signaling.context import services
from signaling.schemas import Strict

CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}


class ListQuery(Strict):
    """Filters of ``GET /api/recordings``."""

    consult_id: str | None = Field(default=None, max_length=36)
    hospital: str | None = Field(default=None, max_length=64)
    doctor: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, pattern=r"^(visit|referral|conference)$")
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None


class RenditionOut(BaseModel):
    """The review rendition of a recording: made after the stop, with its progress."""

    status: str
    progress: int
    file: str | None


class RecordingOut(BaseModel):
    """A recording in the catalogue (times ISO 8601; ``duration`` in seconds, ``size`` bytes)."""

    id: str
    consult_id: str
    hospital: str
    doctor: ActorOut
    kind: str
    title: str
    started_at: str
    stopped_at: str | None
    started_by: str
    duration: float | None
    size: int | None
    status: str
    consent: dict[str, Any]
    rendition: RenditionOut


class RecordingsOut(BaseModel):
    """Recordings, newest first."""

    recordings: list[RecordingOut]


class ManifestOut(BaseModel):
    """What was recorded: the consult, who took part, each track's file with its SHA-256."""

    recording_id: str
    consult: dict[str, Any]
    status: str
    started_at: str
    stopped_at: str | None
    started_by: dict[str, str]
    consent: dict[str, Any]
    participants: list[dict[str, Any]]
    tracks: list[TrackEntry]
    duration: float
    bytes: int


class RecordingDetailOut(RecordingOut):
    """A recording with its manifest, a signed playback link per file, and whether the caller
    may score and comment it."""

    manifest: ManifestOut
    links: dict[str, str]
    may_review: bool


class FileQuery(BaseModel):
    """``access`` from a manifest's link (else a bearer token); ``download=1`` for a download."""

    access: str | None = None
    download: str | None = None


class RecordingEventOut(TimelineEventOut):
    """A consult timeline event, with its ``offset`` in seconds from the recording's start."""

    offset: float


class RecordingTimelineOut(BaseModel):
    """The recording's consult timeline, oldest event first."""

    started_at: str
    events: list[RecordingEventOut]


class ScoresIn(Strict):
    """A scoring: ``{criterion: 1..5}`` for every criterion of the rubric, and a comment."""

    scores: dict[str, int]
    comment: str = Field(default="", max_length=4000)


class CriterionScoreOut(BaseModel):
    """The score of one rubric criterion."""

    criterion: str
    score: int


class ScoringOut(BaseModel):
    """A reviewer's scoring of a recording."""

    id: str
    reviewer: ActorOut
    scores: list[CriterionScoreOut]
    comment: str
    created_at: str


class ScoresOut(BaseModel):
    """The rubric of the recording's hospital, and every scoring, oldest first."""

    rubric: list[str]
    reviews: list[ScoringOut]


class CommentIn(Strict):
    """A comment pinned to ``offset`` seconds from the start of the recording."""

    offset: float = Field(ge=0, le=24 * 3600)
    text: str = Field(min_length=1, max_length=4000)


class CommentOut(BaseModel):
    """A reviewer's comment pinned to ``offset`` seconds from the start of the recording."""

    id: str
    author: ActorOut
    offset: float
    text: str
    created_at: str


class CommentsOut(BaseModel):
    """The comments of a recording, by offset."""

    comments: list[CommentOut]


routes = ApiRoutes("recordings")

#: Refusals of a request about one recording: not the caller's to see, unknown, or deleted.
REFUSED = (403, 404, 410)


async def authorised(
    request: web.Request, identity: Identity, recording_id: str, action: str, review: bool = False
) -> RecordingView:
    """
    The recording of the route, once the bearer is authorised (and audited) for `action`.

    :param review: True for scoring and commenting (the quality team only).
    """
    return await services(request).recordings.access.authorise(
        identity, recording_id, action, review=review, client_address=client_address(request)
    )


def playback_links(
    request: web.Request, who: Identity, recording_id: str, names: list[str]
) -> dict[str, str]:
    """A link per file of a recording, signed for `who` only."""
    access = services(request).recordings.links.sign(who, recording_id)
    return {
        name: f"/api/recordings/{quote(recording_id)}/files/{quote(name)}?access={access}"
        for name in names
    }


@routes.get(
    "/api/recordings",
    query=ListQuery,
    response=RecordingsOut,
    problems=(403,),
)
async def list_recordings(
    request: web.Request, identity: Identity, query: ListQuery
) -> RecordingsOut:
    """Recordings the caller may see (quality team: its hospital's; doctors: theirs), newest first.

    Each with its rendition's progress; filtered by the query.
    """
    where = RecordingFilter(
        hospital=query.hospital,
        consult_id=query.consult_id,
        doctor=query.doctor,
        kind=query.kind,
        started_from=query.from_,
        started_to=query.to,
    )
    found = await services(request).recordings.access.search(
        identity, where, client_address(request)
    )
    return RecordingsOut.model_validate({"recordings": [r.as_dict() for r in found]})


@routes.get(
    "/api/recordings/{recording_id}",
    response=RecordingDetailOut,
    problems=REFUSED,
)
async def read_recording(
    request: web.Request, identity: Identity, recording_id: str
) -> RecordingDetailOut:
    """A recording, its manifest and signed playback links to its files (audited: view)."""
    recording = await authorised(request, identity, recording_id, "view")
    manifest = await services(request).recordings.files.manifest(recording.id)
    names = [t.name for t in manifest.tracks]
    if recording.rendition_file:
        names.append(recording.rendition_file)
    return RecordingDetailOut.model_validate(
        {
            **recording.as_dict(),
            "manifest": manifest.as_dict(),
            "links": playback_links(request, identity, recording.id, names),
            "may_review": may_review(identity, recording.hospital),
        }
    )


@routes.get(
    "/api/recordings/{recording_id}/files/{name}",
    query=FileQuery,
    description="the file",
    other_statuses={206: "the requested range"},
    problems=(401, *REFUSED),
    # A <video src> cannot carry a bearer token: the link's ``access`` stands for the viewer.
    bearer=False,
)
async def recording_file(
    request: web.Request, recording_id: str, name: str, query: FileQuery
) -> web.StreamResponse:
    """One file, with HTTP Range; ``?access=`` from the manifest's links, or a bearer token.

    Audited as ``stream`` (a range request) or ``download``.
    """
    recordings = services(request).recordings
    if query.access is not None:
        who = recordings.links.verify(query.access, recording_id)
    else:
        who = caller(request)
    path = await recordings.open_file(
        who,
        recording_id,
        name,
        ranged="Range" in request.headers,
        via="link" if query.access is not None else "bearer",
        client_address=client_address(request),
    )
    headers = {
        "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
        "Cache-Control": "private, no-store",
    }
    if query.download == "1":
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.FileResponse(path, headers=headers)


@routes.get(
    "/api/recordings/{recording_id}/timeline",
    response=RecordingTimelineOut,
    problems=REFUSED,
)
async def recording_timeline(
    request: web.Request, identity: Identity, recording_id: str
) -> RecordingTimelineOut:
    """The consult's timeline, each event with its offset from the start of the recording."""
    recording = await authorised(request, identity, recording_id, "view_timeline")
    events = await services(request).recordings.timeline(recording)
    return RecordingTimelineOut.model_validate(
        {"started_at": recording.started_at.isoformat(), "events": events}
    )


@routes.get(
    "/api/recordings/{recording_id}/scores",
    response=ScoresOut,
    problems=REFUSED,
)
async def list_scores(request: web.Request, identity: Identity, recording_id: str) -> ScoresOut:
    """The rubric of the recording's hospital and every scoring of the recording."""
    recording = await authorised(request, identity, recording_id, "view_scores")
    recordings = services(request).recordings
    policy = await recordings.policies.policy(recording.hospital)
    reviews = await recordings.reviews.reviews(recording.id)
    return ScoresOut.model_validate({"rubric": list(policy.rubric), "reviews": reviews})


@routes.post(
    "/api/recordings/{recording_id}/scores",
    body=ScoresIn,
    response=ScoringOut,
    status=201,
    description="stored",
    problems=REFUSED,
)
async def add_scores(
    request: web.Request, identity: Identity, recording_id: str, body: ScoresIn
) -> ScoringOut:
    """Score every criterion of the hospital's rubric 1-5, with a comment (quality reviewers)."""
    recording = await authorised(request, identity, recording_id, "score", review=True)
    review = await services(request).recordings.reviews.add_review(
        recording, identity, body.scores, body.comment
    )
    return ScoringOut.model_validate(review)


@routes.get(
    "/api/recordings/{recording_id}/comments",
    response=CommentsOut,
    problems=REFUSED,
)
async def list_comments(request: web.Request, identity: Identity, recording_id: str) -> CommentsOut:
    """The comments pinned to time offsets of the recording, by offset."""
    recording = await authorised(request, identity, recording_id, "view_comments")
    comments = await services(request).recordings.reviews.comments(recording.id)
    return CommentsOut.model_validate({"comments": comments})


@routes.post(
    "/api/recordings/{recording_id}/comments",
    body=CommentIn,
    response=CommentOut,
    status=201,
    description="stored",
    problems=REFUSED,
)
async def add_comment(
    request: web.Request, identity: Identity, recording_id: str, body: CommentIn
) -> CommentOut:
    """Pin a comment to a time offset of the recording (quality reviewers)."""
    recording = await authorised(request, identity, recording_id, "comment", review=True)
    comment = await services(request).recordings.reviews.add_comment(
        recording.id, identity, body.offset, body.text
    )
    return CommentOut.model_validate(comment)
