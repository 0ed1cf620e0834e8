"""REST routes of recordings: catalogue, manifest, files (HTTP Range), timeline, review, audit.

Every request about a recording is authorised and audited by :mod:`recordings.access`, refusals
too. The manifest answer carries, per file, a playback link (:mod:`recordings.links`) for that
viewer only; following the link is authorised and audited like any request.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import AwareDatetime, Field

from recordings.access import may_review
from recordings.catalogue import RecordingFilter, RecordingView
from rooms.errors import InvalidPayload
from rooms.identity import Identity
from signaling.api.bearer import caller
from signaling.context import SERVICES, services
from signaling.errors import json_body
from signaling.schemas import Strict

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska"}


class ScoresIn(Strict):
    """A scoring: ``{criterion: 1..5}`` for every criterion of the rubric, and a comment."""

    scores: dict[str, int]
    comment: str = Field(default="", max_length=4000)


class CommentIn(Strict):
    """A comment pinned to ``offset`` seconds from the start of the recording."""

    offset: float = Field(ge=0, le=24 * 3600)
    text: str = Field(min_length=1, max_length=4000)


class PolicyIn(Strict):
    """A hospital's recording policy."""

    retention_days: int = Field(ge=0, le=36500)
    rubric: list[str] = Field(min_length=1, max_length=20)


class ListQuery(Strict):
    """Filters of ``GET /api/recordings``."""

    consult_id: str | None = Field(default=None, max_length=36)
    hospital: str | None = Field(default=None, max_length=64)
    doctor: str | None = Field(default=None, max_length=128)
    kind: str | None = Field(default=None, pattern=r"^(visit|referral|conference)$")
    from_: AwareDatetime | None = Field(default=None, alias="from")
    to: AwareDatetime | None = None


async def authorised(
    request: web.Request, action: str, *, review: bool = False
) -> tuple[Identity, RecordingView]:
    """
    The bearer and the recording of the route, once authorised and audited.

    :param action: What the caller does (``view``, ``score``, …).
    :param review: True for scoring and commenting (the quality team only).
    """
    who = caller(request)
    recording = await services(request).recordings.access.authorise(
        who,
        request.match_info["recording_id"],
        action,
        review=review,
        client_address=request.remote,
    )
    return who, recording


def _links(
    request: web.Request, who: Identity, recording_id: str, names: list[str]
) -> dict[str, str]:
    access = services(request).recordings.links.sign(who, recording_id)
    return {
        name: f"/api/recordings/{quote(recording_id)}/files/{quote(name)}?access={access}"
        for name in names
    }


# --- routes -----------------------------------------------------------------------------------


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """Recordings the caller may see, filtered; newest first."""
    query = ListQuery.model_validate(dict(request.query))
    where = RecordingFilter(
        hospital=query.hospital,
        consult_id=query.consult_id,
        doctor=query.doctor,
        kind=query.kind,
        started_from=query.from_,
        started_to=query.to,
    )
    found = await services(request).recordings.access.search(caller(request), where, request.remote)
    return web.json_response({"recordings": [r.as_dict() for r in found]})


@routes.get("/api/recordings/{recording_id}")
async def read_recording(request: web.Request) -> web.Response:
    """A recording with its manifest and signed playback links to its files."""
    who, recording = await authorised(request, "view")
    manifest = await services(request).recordings.files.manifest(recording.id)
    names = [t.name for t in manifest.tracks]
    if recording.rendition_file:
        names.append(recording.rendition_file)
    return web.json_response(
        {
            **recording.as_dict(),
            "manifest": manifest.as_dict(),
            "links": _links(request, who, recording.id, names),
            "may_review": may_review(who, recording.hospital),
        }
    )


@routes.get("/api/recordings/{recording_id}/files/{name}")
async def recording_file(request: web.Request) -> web.StreamResponse:
    """One file of a recording, with HTTP Range (``?access=`` from the manifest, or a bearer)."""
    recordings = services(request).recordings
    recording_id, name = request.match_info["recording_id"], request.match_info["name"]
    access = request.query.get("access")
    who = recordings.links.verify(access, recording_id) if access is not None else caller(request)
    path = await recordings.open_file(
        who,
        recording_id,
        name,
        ranged="Range" in request.headers,
        via="link" if access is not None else "bearer",
        client_address=request.remote,
    )
    headers = {
        "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
        "Cache-Control": "private, no-store",
    }
    if request.query.get("download") == "1":
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return web.FileResponse(path, headers=headers)


@routes.get("/api/recordings/{recording_id}/timeline")
async def recording_timeline(request: web.Request) -> web.Response:
    """The consult's timeline, each event with its offset from the start of the recording."""
    _, recording = await authorised(request, "view_timeline")
    events = await services(request).recordings.timeline(recording)
    return web.json_response({"started_at": recording.started_at.isoformat(), "events": events})


@routes.get("/api/recordings/{recording_id}/scores")
async def list_scores(request: web.Request) -> web.Response:
    """The rubric of the recording's hospital and every scoring of the recording."""
    _, recording = await authorised(request, "view_scores")
    recordings = services(request).recordings
    policy = await recordings.policies.policy(recording.hospital)
    reviews = await recordings.reviews.reviews(recording.id)
    return web.json_response({"rubric": list(policy.rubric), "reviews": reviews})


@routes.post("/api/recordings/{recording_id}/scores")
async def add_scores(request: web.Request) -> web.Response:
    """Score the recording against the hospital's rubric (quality reviewers)."""
    body = ScoresIn.model_validate(await json_body(request))
    who, recording = await authorised(request, "score", review=True)
    review = await services(request).recordings.reviews.add_review(
        recording, who, body.scores, body.comment
    )
    return web.json_response(review, status=201)


@routes.get("/api/recordings/{recording_id}/comments")
async def list_comments(request: web.Request) -> web.Response:
    """The comments pinned to the recording, by offset."""
    _, recording = await authorised(request, "view_comments")
    comments = await services(request).recordings.reviews.comments(recording.id)
    return web.json_response({"comments": comments})


@routes.post("/api/recordings/{recording_id}/comments")
async def add_comment(request: web.Request) -> web.Response:
    """Pin a comment to a time offset of the recording (quality reviewers)."""
    body = CommentIn.model_validate(await json_body(request))
    who, recording = await authorised(request, "comment", review=True)
    comment = await services(request).recordings.reviews.add_comment(
        recording.id, who, body.offset, body.text
    )
    return web.json_response(comment, status=201)


# --- administration ---------------------------------------------------------------------------


async def _admin(request: web.Request, hospital: str, action: str) -> Identity:
    who = caller(request)
    await services(request).recordings.access.check_admin(who, hospital, action, request.remote)
    return who


@routes.get("/api/audit")
async def audit_log(request: web.Request) -> web.Response:
    """The audit log of the caller's hospital (its administrators), newest first."""
    who = caller(request)
    hospital = request.query.get("hospital", who.hospital)
    await _admin(request, hospital, "view_audit")
    try:
        limit = min(max(int(request.query.get("limit", "200")), 1), 1000)
    except ValueError as exc:
        raise InvalidPayload("limit must be a number") from exc
    entries = await services(request).recordings.audit.entries(
        hospital_id=hospital,
        resource_type=request.query.get("resource_type"),
        resource_id=request.query.get("resource_id"),
        actor_sub=request.query.get("actor"),
        limit=limit,
    )
    return web.json_response(
        {
            "entries": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "actor": {
                        "sub": e.actor_sub,
                        "role": e.actor_role,
                        "hospital": e.actor_hospital,
                    },
                    "action": e.action,
                    "resource_type": e.resource_type,
                    "resource_id": e.resource_id,
                    "consult_id": e.consult_id,
                    "outcome": e.outcome,
                    "client_address": e.client_address,
                    "detail": e.detail,
                }
                for e in entries
            ]
        }
    )


@routes.get("/api/recording-policies/{hospital}")
async def read_policy(request: web.Request) -> web.Response:
    """A hospital's recording policy: retention days and review rubric (its administrators)."""
    hospital = request.match_info["hospital"]
    await _admin(request, hospital, "view_policy")
    policy = await services(request).recordings.policies.policy(hospital)
    return web.json_response(policy.as_dict())


@routes.put("/api/recording-policies/{hospital}")
async def set_policy(request: web.Request) -> web.Response:
    """Set a hospital's retention and rubric (its administrators)."""
    hospital = request.match_info["hospital"]
    body = PolicyIn.model_validate(await json_body(request))
    who = await _admin(request, hospital, "set_policy")
    recordings = services(request).recordings
    policy = await recordings.policies.set_policy(
        hospital, body.retention_days, body.rubric, who.sub
    )
    await recordings.access.audit_admin(
        who, hospital, "set_policy", client_address=request.remote, detail=policy.as_dict()
    )
    return web.json_response(policy.as_dict())


@routes.post("/api/recording-policies/{hospital}/retention")
async def apply_retention(request: web.Request) -> web.Response:
    """Delete the hospital's expired recordings now (the server also does it hourly)."""
    hospital = request.match_info["hospital"]
    await _admin(request, hospital, "apply_retention")
    deleted = await services(request).recordings.retention.apply(datetime.now(UTC), hospital)
    return web.json_response({"deleted": deleted})


def setup(app: web.Application) -> None:
    """
    Add the routes, and the recordings' start-up and shut-down.

    :param app: The application, its services already set.
    """
    recordings = app[SERVICES].recordings
    app.add_routes(routes)

    async def open_recordings(_: web.Application) -> None:
        await recordings.open()

    async def close_recordings(_: web.Application) -> None:
        await recordings.close()

    app.on_startup.append(open_recordings)
    app.on_shutdown.append(close_recordings)


#: Request bodies of these routes, for the OpenAPI document.
RECORDING_SCHEMAS = (ScoresIn, CommentIn, PolicyIn)


def recording_paths() -> dict[str, Any]:
    """The OpenAPI paths of the recording routes."""

    def path_param(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    def query(name: str, fmt: str | None = None) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if fmt:
            schema["format"] = fmt
        return {"name": name, "in": "query", "required": False, "schema": schema}

    def body(model: type[Strict]) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        return {"required": True, "content": {"application/json": {"schema": ref}}}

    def refused(*statuses: int) -> dict[str, Any]:
        ref = {"$ref": "#/components/schemas/ProblemOut"}
        return {
            str(s): {
                "description": "refused (audited)",
                "content": {"application/json": {"schema": ref}},
            }
            for s in statuses
        }

    recording = path_param("recording_id")
    hospital = path_param("hospital")
    ok = {"200": {"description": "OK"}}
    return {
        "/api/recordings": {
            "get": {
                "summary": "Recordings the caller may see (reviewers and admins: their hospital;"
                " doctors: their consults), newest first, with rendition progress",
                "parameters": [
                    query("consult_id"),
                    query("hospital"),
                    query("doctor"),
                    query("kind"),
                    query("from", "date-time"),
                    query("to", "date-time"),
                ],
                "responses": {**ok, **refused(401, 403, 422)},
            }
        },
        "/api/recordings/{recording_id}": {
            "get": {
                "summary": "A recording, its manifest and signed playback links (audited: view)",
                "parameters": [recording],
                "responses": {**ok, **refused(401, 403, 404, 410)},
            }
        },
        "/api/recordings/{recording_id}/files/{name}": {
            "get": {
                "summary": "One file, honouring HTTP Range; `?access=` from the manifest's links"
                " or a bearer token (audited: stream or download)",
                "security": [{"bearer": []}, {}],
                "parameters": [recording, path_param("name"), query("access"), query("download")],
                "responses": {
                    "200": {"description": "the file"},
                    "206": {"description": "the requested range"},
                    **refused(401, 403, 404, 410),
                },
            }
        },
        "/api/recordings/{recording_id}/timeline": {
            "get": {
                "summary": "The consult's timeline, each event with its offset in the recording",
                "parameters": [recording],
                "responses": {**ok, **refused(401, 403, 404, 410)},
            }
        },
        "/api/recordings/{recording_id}/scores": {
            "get": {
                "summary": "The hospital's rubric and every scoring of the recording",
                "parameters": [recording],
                "responses": {**ok, **refused(401, 403, 404, 410)},
            },
            "post": {
                "summary": "Score every rubric criterion 1-5, with a comment (quality reviewers)",
                "parameters": [recording],
                "requestBody": body(ScoresIn),
                "responses": {"201": {"description": "stored"}, **refused(401, 403, 404, 422)},
            },
        },
        "/api/recordings/{recording_id}/comments": {
            "get": {
                "summary": "Comments pinned to time offsets of the recording",
                "parameters": [recording],
                "responses": {**ok, **refused(401, 403, 404, 410)},
            },
            "post": {
                "summary": "Pin a comment to a time offset (quality reviewers)",
                "parameters": [recording],
                "requestBody": body(CommentIn),
                "responses": {"201": {"description": "stored"}, **refused(401, 403, 404, 422)},
            },
        },
        "/api/audit": {
            "get": {
                "summary": "The audit log of a hospital (its administrators), newest first",
                "parameters": [
                    query("hospital"),
                    query("resource_type"),
                    query("resource_id"),
                    query("actor"),
                    query("limit"),
                ],
                "responses": {**ok, **refused(401, 403)},
            }
        },
        "/api/recording-policies/{hospital}": {
            "get": {
                "summary": "A hospital's retention days and review rubric (its administrators)",
                "parameters": [hospital],
                "responses": {**ok, **refused(401, 403)},
            },
            "put": {
                "summary": "Set a hospital's retention days and review rubric (audited)",
                "parameters": [hospital],
                "requestBody": body(PolicyIn),
                "responses": {**ok, **refused(401, 403, 422)},
            },
        },
        "/api/recording-policies/{hospital}/retention": {
            "post": {
                "summary": "Delete the hospital's expired recordings now (each deletion audited)",
                "parameters": [hospital],
                "responses": {**ok, **refused(401, 403)},
            }
        },
    }
