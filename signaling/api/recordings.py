"""REST routes of recordings: catalogue, manifest, files (HTTP Range), timeline, review, audit.

Every request about a recording is authorised (media.recording.access) and audited, refusals
too (``refused:<code>``). Browsers cannot put a bearer token on ``<video src>``: the manifest
answer carries, per file, a link with a short-lived ``access`` signature valid for that one
recording and that viewer only; following the link is authorised and audited like any request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import AwareDatetime, Field

from media.recording.access import check_admin, check_read, check_review
from media.recording.catalogue import RecordingFilter, RecordingView
from media.recording.errors import (
    RecordingDeleted,
    RecordingFileNotFound,
    RecordingForbidden,
)
from rooms.audit import AuditRecord
from rooms.errors import DomainError, InvalidPayload
from rooms.identity import Identity, Role
from signaling.api.bearer import caller
from signaling.auth import TokenExpired, TokenInvalid
from signaling.context import SERVICES, Services, services
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


# --- playback links ---------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PlaybackLinks:
    """
    Signs and checks ``access`` parameters: one viewer, one recording, a few minutes.

    :param secret: The deployment's signing secret (a key is derived from it).
    :param ttl_seconds: How long a link is valid.
    """

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._key = hashlib.sha256(b"teleconsult recording links\x00" + secret.encode()).digest()
        self._ttl = ttl_seconds

    def sign(self, viewer: Identity, recording_id: str) -> str:
        """
        An ``access`` value letting `viewer` fetch the files of one recording.

        :param viewer: Who was authorised to view the recording.
        :param recording_id: The recording.
        """
        claims = {
            "rec": recording_id,
            "sub": viewer.sub,
            "name": viewer.name,
            "role": viewer.role.value,
            "hospital": viewer.hospital,
            "exp": int(time.time()) + self._ttl,
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{signature}"

    def verify(self, access: str, recording_id: str) -> Identity:
        """
        The viewer an ``access`` value stands for, if it is valid for `recording_id`.

        :raises TokenInvalid: forged, malformed or for another recording.
        :raises TokenExpired: too old.
        """
        body, _, signature = access.partition(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            raise TokenInvalid("The link is not valid")
        try:
            claims = json.loads(_unb64(body))
            viewer = Identity(
                claims["sub"], claims["name"], Role(claims["role"]), claims["hospital"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("The link is not valid") from exc
        if claims.get("rec") != recording_id:
            raise TokenInvalid("The link is for another recording")
        if int(claims.get("exp", 0)) < time.time():
            raise TokenExpired("The link has expired: open the recording again")
        return viewer


LINKS = web.AppKey("recording_links", PlaybackLinks)


# --- authorisation and audit ------------------------------------------------------------------


async def _audit(
    request: web.Request,
    who: Identity,
    action: str,
    recording_id: str,
    recording: RecordingView | None,
    error: DomainError | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    outcome = "allowed" if error is None else f"refused:{error.code}"
    await services(request).recordings.audit.record(
        who,
        AuditRecord(
            action,
            "recording",
            recording_id,
            recording.consult_id if recording else None,
            recording.hospital if recording else None,
            outcome,
        ),
        client_address=request.remote,
        detail=detail or {},
    )


Rule = Callable[[Identity, RecordingView], Awaitable[None]]


async def may_read(who: Identity, recording: RecordingView, svc: Services) -> None:
    """Readers: the hospital's quality team, and doctors invited to the consult."""
    took_part = who.role is Role.DOCTOR and await svc.recordings.catalogue.took_part(
        recording.consult_id, who.sub
    )
    check_read(who, recording.hospital, recording.consult_id, took_part)


async def authorised(
    request: web.Request,
    action: str,
    *,
    review: bool = False,
    who: Identity | None = None,
    detail: dict[str, Any] | None = None,
    audit_allowed: bool = True,
) -> tuple[Identity, RecordingView]:
    """
    The caller and the recording of the route, once authorised and audited.

    :param action: What the caller does (``view``, ``stream``, ``download``, ``score``, …).
    :param review: True for scoring and commenting (the quality team only).
    :param who: The caller when not the bearer (a playback link).
    :param detail: Extra audit detail.
    :param audit_allowed: False when the route audits the allowed access itself.
    :raises DomainError: refused (and audited as refused).
    """
    svc = services(request)
    who = who or caller(request)
    recording_id = request.match_info["recording_id"]
    recording: RecordingView | None = None
    try:
        recording = await svc.recordings.catalogue.get(recording_id)
        await may_read(who, recording, svc)
        if review:
            check_review(who, recording.hospital)
        if recording.status == "deleted":
            raise RecordingDeleted("This recording was deleted under the retention policy")
    except DomainError as error:
        logger.warning("recording access refused", extra={"code": error.code, "action": action})
        await _audit(request, who, action, recording_id, recording, error, detail)
        raise
    if audit_allowed:
        await _audit(request, who, action, recording_id, recording, None, detail)
    return who, recording


def _links(request: web.Request, who: Identity, recording_id: str, names: list[str]) -> dict:
    access = request.app[LINKS].sign(who, recording_id)
    return {
        name: f"/api/recordings/{quote(recording_id)}/files/{quote(name)}?access={access}"
        for name in names
    }


# --- routes -----------------------------------------------------------------------------------


@routes.get("/api/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    """Recordings the caller may see, filtered; newest first."""
    svc = services(request)
    who = caller(request)
    query = ListQuery.model_validate(dict(request.query))
    where = RecordingFilter(
        hospital=query.hospital,
        consult_id=query.consult_id,
        doctor=query.doctor,
        kind=query.kind,
        started_from=query.from_,
        started_to=query.to,
    )
    try:
        if who.consult_id is None and who.role in (Role.REVIEWER, Role.ADMIN):
            if query.hospital not in (None, who.hospital):
                raise RecordingForbidden("You may only see your own hospital's recordings")
            where = RecordingFilter(**{**where.__dict__, "hospital": who.hospital})
        elif who.consult_id is None and who.role is Role.DOCTOR:
            where = RecordingFilter(**{**where.__dict__, "participant_doctor": who.sub})
        else:
            raise RecordingForbidden("You may not see recordings")
    except DomainError as error:
        await _audit(request, who, "list", "*", None, error)
        raise
    found = await svc.recordings.catalogue.list(where)
    await _audit(request, who, "list", "*", None, detail={"count": len(found)})
    return web.json_response({"recordings": [r.as_dict() for r in found]})


@routes.get("/api/recordings/{recording_id}")
async def read_recording(request: web.Request) -> web.Response:
    """A recording with its manifest and signed playback links to its files."""
    who, recording = await authorised(request, "view")
    svc = services(request)
    manifest = await svc.recordings.manifest(recording.id)
    names = [t.name for t in manifest.tracks]
    if recording.rendition_file:
        names.append(recording.rendition_file)
    return web.json_response(
        {
            **recording.as_dict(),
            "manifest": manifest.as_dict(),
            "links": _links(request, who, recording.id, names),
            "may_review": _may_review(who, recording),
        }
    )


def _may_review(who: Identity, recording: RecordingView) -> bool:
    try:
        check_review(who, recording.hospital)
    except DomainError:
        return False
    return True


@routes.get("/api/recordings/{recording_id}/files/{name}")
async def recording_file(request: web.Request) -> web.StreamResponse:
    """One file of a recording, with HTTP Range (``?access=`` from the manifest, or a bearer)."""
    access = request.query.get("access")
    who = None
    if access is not None:
        who = request.app[LINKS].verify(access, request.match_info["recording_id"])
    name = request.match_info["name"]
    ranged = "Range" in request.headers
    action = "stream" if ranged else "download"
    detail = {"file": name, "via": "link" if access is not None else "bearer"}
    who, recording = await authorised(request, action, who=who, detail=detail, audit_allowed=False)
    svc = services(request)
    manifest = await svc.recordings.manifest(recording.id)
    known = {t.name for t in manifest.tracks} | {recording.rendition_file}
    path = svc.recordings.folder(recording.id) / name
    if name not in known or not path.is_file():
        error = RecordingFileNotFound("No such file in this recording")
        await _audit(request, who, action, recording.id, recording, error, detail)
        raise error
    await _audit(request, who, action, recording.id, recording, None, detail)
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
    entries = await services(request).recordings.catalogue.timeline(recording.consult_id)
    return web.json_response(
        {
            "started_at": recording.started_at.isoformat(),
            "events": [
                {
                    **entry.as_dict(),
                    "offset": round((entry.at - recording.started_at).total_seconds(), 3),
                }
                for entry in entries
            ],
        }
    )


@routes.get("/api/recordings/{recording_id}/scores")
async def list_scores(request: web.Request) -> web.Response:
    """The rubric of the recording's hospital and every scoring of the recording."""
    _, recording = await authorised(request, "view_scores")
    catalogue = services(request).recordings.catalogue
    policy = await catalogue.policy(recording.hospital)
    reviews = await catalogue.reviews(recording.id)
    return web.json_response({"rubric": list(policy.rubric), "reviews": reviews})


@routes.post("/api/recordings/{recording_id}/scores")
async def add_scores(request: web.Request) -> web.Response:
    """Score the recording against the hospital's rubric (quality reviewers)."""
    body = ScoresIn.model_validate(await json_body(request))
    who, recording = await authorised(request, "score", review=True)
    catalogue = services(request).recordings.catalogue
    policy = await catalogue.policy(recording.hospital)
    review = await catalogue.add_review(
        recording.id, who.sub, who.name, body.scores, body.comment, policy.rubric
    )
    return web.json_response(review, status=201)


@routes.get("/api/recordings/{recording_id}/comments")
async def list_comments(request: web.Request) -> web.Response:
    """The comments pinned to the recording, by offset."""
    _, recording = await authorised(request, "view_comments")
    comments = await services(request).recordings.catalogue.comments(recording.id)
    return web.json_response({"comments": comments})


@routes.post("/api/recordings/{recording_id}/comments")
async def add_comment(request: web.Request) -> web.Response:
    """Pin a comment to a time offset of the recording (quality reviewers)."""
    body = CommentIn.model_validate(await json_body(request))
    who, recording = await authorised(request, "comment", review=True)
    comment = await services(request).recordings.catalogue.add_comment(
        recording.id, who.sub, who.name, body.offset, body.text
    )
    return web.json_response(comment, status=201)


# --- administration ---------------------------------------------------------------------------


async def _admin(request: web.Request, hospital: str, action: str) -> Identity:
    who = caller(request)
    try:
        check_admin(who, hospital)
    except DomainError as error:
        await services(request).recordings.audit.record(
            who,
            AuditRecord(action, "hospital", hospital, None, hospital, f"refused:{error.code}"),
            client_address=request.remote,
        )
        raise
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
    policy = await services(request).recordings.catalogue.policy(hospital)
    return web.json_response(policy.as_dict())


@routes.put("/api/recording-policies/{hospital}")
async def set_policy(request: web.Request) -> web.Response:
    """Set a hospital's retention and rubric (its administrators)."""
    hospital = request.match_info["hospital"]
    body = PolicyIn.model_validate(await json_body(request))
    who = await _admin(request, hospital, "set_policy")
    policy = await services(request).recordings.catalogue.set_policy(
        hospital, body.retention_days, body.rubric, who.sub
    )
    await services(request).recordings.audit.record(
        who,
        AuditRecord("set_policy", "hospital", hospital, None, hospital),
        client_address=request.remote,
        detail=policy.as_dict(),
    )
    return web.json_response(policy.as_dict())


@routes.post("/api/recording-policies/{hospital}/retention")
async def apply_retention(request: web.Request) -> web.Response:
    """Delete the hospital's expired recordings now (the server also does it hourly)."""
    hospital = request.match_info["hospital"]
    await _admin(request, hospital, "apply_retention")
    deleted = await services(request).recordings.apply_retention(datetime.now(UTC), hospital)
    return web.json_response({"deleted": deleted})


def setup(app: web.Application) -> None:
    """
    Add the routes, the playback link signer, and the recordings' start-up and shut-down.

    :param app: The application, its services already set.
    """
    svc = app[SERVICES]
    app[LINKS] = PlaybackLinks(
        svc.settings.signing_secret(), svc.settings.recording_link_ttl_seconds
    )
    app.add_routes(routes)

    async def open_recordings(_: web.Application) -> None:
        await svc.recordings.open()

    async def close_recordings(_: web.Application) -> None:
        await svc.recordings.close()

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
