"""Recording with consent, then the quality team's review over REST: access, audit, retention."""

from __future__ import annotations

import asyncio
import hashlib
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
from sqlalchemy import update

from config.database import Database
from recordings.models import Recording
from tests.integration.live import HOSPITAL, LiveServer, SignalingClient, join_token, participant_id
from tests.integration.media_client import MediaClient

OTHER_HOSPITAL = "h-west"


@dataclass
class RecordedVisit:
    """A visit recorded for a couple of seconds, its recording id, and the people in it."""

    consult: dict[str, Any]
    recording_id: str
    doctor: SignalingClient
    patient: SignalingClient
    states: list[dict[str, Any]]
    #: Seconds from asking to start to the stop's acknowledgement.
    wall: float


async def join_visit(
    live_server: LiveServer, clients: Callable[..., Any]
) -> tuple[dict[str, Any], SignalingClient, SignalingClient]:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    assert (await patient.call("join", {"consult_id": consult["id"]}))["ok"]
    await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient.next("admitted")
    return consult, doctor, patient


@pytest.fixture
async def recorded(
    live_server: LiveServer, clients: Callable[..., Any]
) -> AsyncIterator[RecordedVisit]:
    consult, doctor, patient = await join_visit(live_server, clients)
    states: list[dict[str, Any]] = []
    patient.client.on("recording_state", states.append)
    doctor_media, patient_media = MediaClient(doctor), MediaClient(patient)
    try:
        await doctor_media.publish()
        await patient_media.publish()
        await patient_media.wait_for(participant_id(consult, "dr-wang"), "video", 5, timeout=30)
        assert (await patient.call("recording_consent", {"agree": True}))["ok"]
        asked = time.monotonic()
        started = await doctor.call("start_recording", {})
        assert started["ok"] and started["recording"], started
        await asyncio.sleep(2.0)
        stopped = await doctor.call("stop_recording", {})
        assert stopped["ok"] and not stopped["recording"], stopped
        wall = time.monotonic() - asked
        yield RecordedVisit(consult, started["recording_id"], doctor, patient, states, wall)
    finally:
        await doctor_media.close()
        await patient_media.close()


def url(live_server: LiveServer, recording_id: str, tail: str = "") -> str:
    return f"{live_server.url}/api/recordings/{recording_id}{tail}"


async def get(live_server: LiveServer, path: str, token: str, **headers: str) -> tuple[int, Any]:
    async with live_server.http.get(
        path, headers={**live_server.headers(token), **headers}
    ) as response:
        body = await response.json() if "json" in response.content_type else await response.read()
        return response.status, body


async def audit_entries(live_server: LiveServer, **query: str) -> list[dict[str, Any]]:
    admin = live_server.token("admin-1", "admin")
    async with live_server.http.get(
        f"{live_server.url}/api/audit", params=query, headers=live_server.headers(admin)
    ) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["entries"]


async def test_starting_a_recording_without_the_patients_consent_is_refused(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult, doctor, patient = await join_visit(live_server, clients)

    refused = await doctor.call("start_recording", {})
    assert refused == {
        "ok": False,
        "error": {"code": "consent_required", "message": refused["error"]["message"]},
    }
    not_host = await patient.call("start_recording", {})
    assert not_host["error"]["code"] == "forbidden"
    attested = await doctor.call(
        "start_recording", {"attested_consent": {"reason": "Patient agreed aloud, no keyboard"}}
    )
    assert attested["ok"] and attested["recording"]
    assert (await doctor.call("stop_recording", {}))["ok"]

    timeline = await live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}/timeline",
        headers=live_server.headers(live_server.token("dr-wang", "doctor")),
    )
    kinds = [event["kind"] for event in (await timeline.json())["events"]]
    assert kinds.index("recording_consent_attested") < kinds.index("recording_started")
    assert kinds.index("recording_started") < kinds.index("recording_stopped")


async def test_the_patient_agrees_from_the_lobby_and_sees_who_records_before_admission(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    doctor_states: list[dict[str, Any]] = []
    doctor.client.on("recording_state", doctor_states.append)
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    patient_states: list[dict[str, Any]] = []
    patient.client.on("recording_state", patient_states.append)
    assert (await patient.call("join", {"consult_id": consult["id"]}))["status"] == "lobby"

    agreed = await patient.call("recording_consent", {"agree": True})
    assert agreed["ok"], agreed
    assert agreed["consent"]["given"] and agreed["consent"]["by"] == "Li Hua"
    async with asyncio.timeout(5):
        while not doctor_states:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert doctor_states[-1]["consent"]["given"], "the host sees the agreement at once"

    started = await doctor.call("start_recording", {})
    assert started["ok"] and started["recording"], "no attestation needed: consent is on record"
    assert (started["by"], started["by_sub"]) == ("Dr. Wang Fang", "dr-wang")
    async with asyncio.timeout(5):
        while not any(s["recording"] for s in patient_states):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    seen = next(s for s in patient_states if s["recording"])
    assert seen["by"] == "Dr. Wang Fang", "the waiting patient sees who records, by name"
    await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient.next("admitted")
    assert (await doctor.call("stop_recording", {}))["ok"]

    timeline = await live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}/timeline",
        headers=live_server.headers(live_server.token("dr-wang", "doctor")),
    )
    events = (await timeline.json())["events"]
    kinds = [event["kind"] for event in events]
    assert kinds.index("recording_consent") < kinds.index("recording_started")
    assert kinds.index("recording_started") < kinds.index("admitted")
    started_event = next(e for e in events if e["kind"] == "recording_started")
    assert started_event["detail"]["method"] == "patient"


async def test_a_recording_with_consent_is_catalogued_with_a_manifest_and_hashes(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    reviewer = live_server.token("rev-1", "reviewer", name="Quality Reviewer")
    status, listing = await get(live_server, f"{live_server.url}/api/recordings", reviewer)
    assert status == 200
    [entry] = listing["recordings"]
    assert entry["id"] == recorded.recording_id
    assert entry["status"] == "complete" and entry["consent"]["method"] == "patient"
    assert entry["doctor"]["sub"] == "dr-wang" and entry["kind"] == "visit"
    # No longer than it ran; a duration counts its last frame whole (a video frame interval).
    assert 0 < entry["duration"] <= recorded.wall + 0.1
    # Everyone saw the consent, the start and the stop.
    assert [s["recording"] for s in recorded.states] == [False, True, False]
    assert recorded.states[0]["consent"] == {
        "given": True,
        "by": "Li Hua",
        "at": recorded.states[0]["consent"]["at"],
        "withdrawn": False,
    }
    assert recorded.states[-1]["stop_reason"] == "host"

    status, detail = await get(live_server, url(live_server, recorded.recording_id), reviewer)
    assert status == 200
    manifest = detail["manifest"]
    assert manifest["consult"]["id"] == recorded.consult["id"]
    assert {p["sub"] for p in manifest["participants"]} == {"dr-wang", "pt-li"}
    assert sorted(t["source"] for t in manifest["tracks"]) == [
        "camera",
        "camera",
        "microphone",
        "microphone",
    ]
    for track in manifest["tracks"]:
        link = detail["links"][track["name"]]
        async with live_server.http.get(f"{live_server.url}{link}") as response:
            assert response.status == 200
            data = await response.read()
        assert hashlib.sha256(data).hexdigest() == track["sha256"]
        assert len(data) == track["bytes"]
    # Recordings are health data: the server's user alone may read them.
    folder = live_server.settings.recordings_dir / recorded.recording_id
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o600}

    for filters, count in (
        ({"consult_id": recorded.consult["id"]}, 1),
        ({"consult_id": "other"}, 0),
        ({"doctor": "dr-wang", "kind": "visit"}, 1),
        ({"kind": "conference"}, 0),
        ({"from": "2000-01-01T00:00:00+00:00", "to": "2999-01-01T00:00:00+00:00"}, 1),
        ({"from": "2999-01-01T00:00:00+00:00"}, 0),
    ):
        async with live_server.http.get(
            f"{live_server.url}/api/recordings",
            params=filters,
            headers=live_server.headers(reviewer),
        ) as response:
            assert len((await response.json())["recordings"]) == count, filters


async def test_files_are_streamed_with_http_range_and_every_stream_is_audited(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    reviewer = live_server.token("rev-1", "reviewer")
    _, detail = await get(live_server, url(live_server, recorded.recording_id), reviewer)
    track = next(t for t in detail["manifest"]["tracks"] if t["kind"] == "video")
    link = f"{live_server.url}{detail['links'][track['name']]}"

    async with live_server.http.get(link, headers={"Range": "bytes=0-99"}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 0-99/{track['bytes']}"
        assert len(await response.read()) == 100
    async with live_server.http.get(link, headers={"Range": "bytes=100-"}) as response:
        assert response.status == 206
        rest = await response.read()
    assert len(rest) == track["bytes"] - 100

    forged = link.replace("access=", "access=x")
    async with live_server.http.get(forged) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "token_invalid"
    other = url(live_server, "other-recording", f"/files/{track['name']}?")
    async with live_server.http.get(other + link.split("?", 1)[1]) as response:
        assert response.status == 401

    entries = await audit_entries(live_server, resource_id=recorded.recording_id)
    actions = [(e["action"], e["outcome"], e["actor"]["sub"]) for e in entries]
    assert actions.count(("stream", "allowed", "rev-1")) == 2
    assert ("view", "allowed", "rev-1") in actions
    assert all(e["client_address"] == "127.0.0.1" for e in entries)


OUTSIDERS = [
    ("rev-west", "reviewer", OTHER_HOSPITAL),
    ("pt-li", "patient", HOSPITAL),
    ("dr-zhao", "doctor", HOSPITAL),
    ("exp-chen", "expert", HOSPITAL),
    ("admin-west", "admin", OTHER_HOSPITAL),
]


async def test_people_outside_the_quality_team_and_the_consult_are_refused_and_audited(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    rid = recorded.recording_id
    reviewer = live_server.token("rev-1", "reviewer")
    _, allowed = await get(live_server, url(live_server, rid), reviewer)
    file_name = allowed["manifest"]["tracks"][0]["name"]
    views_before = await audit_entries(live_server, resource_id=rid)
    for sub, role, hospital in OUTSIDERS:
        token = live_server.token(sub, role, hospital)
        for path in ("", "/timeline", "/scores", "/comments", f"/files/{file_name}"):
            status, body = await get(live_server, url(live_server, rid, path), token)
            assert status == 403, (sub, path, body)
            assert body["error"]["code"] == "recording_forbidden"
        for path, payload in (
            ("/scores", {"scores": {}, "comment": ""}),
            ("/comments", {"offset": 1.0, "text": "note"}),
        ):
            async with live_server.http.post(
                url(live_server, rid, path), json=payload, headers=live_server.headers(token)
            ) as response:
                assert response.status == 403, (sub, path)
        status, body = await get(live_server, f"{live_server.url}/api/recordings", token)
        if role in ("reviewer", "admin", "doctor"):
            assert status == 200 and body["recordings"] == [], sub
        else:
            assert status == 403 and body["error"]["code"] == "recording_forbidden"
        status, body = await get(
            live_server, f"{live_server.url}/api/audit?hospital={HOSPITAL}", token
        )
        assert status == 403 and body["error"]["code"] == "admin_required"
        status, _ = await get(live_server, f"{live_server.url}/review", token)
        assert status == 200  # the page itself holds nothing: its API calls are refused

    entries = await audit_entries(live_server, resource_id=rid)
    new = entries[: len(entries) - len(views_before)]
    assert {e["actor"]["sub"] for e in new} == {sub for sub, _, _ in OUTSIDERS}
    assert len(new) == 7 * len(OUTSIDERS)
    assert {e["outcome"] for e in new} == {"refused:recording_forbidden"}, "never as allowed"


async def test_the_doctor_of_the_consult_sees_its_recording_but_may_not_score_it(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    doctor = live_server.token("dr-wang", "doctor")
    status, listing = await get(live_server, f"{live_server.url}/api/recordings", doctor)
    assert status == 200 and [r["id"] for r in listing["recordings"]] == [recorded.recording_id]
    status, detail = await get(live_server, url(live_server, recorded.recording_id), doctor)
    assert status == 200 and detail["may_review"] is False
    async with live_server.http.post(
        url(live_server, recorded.recording_id, "/comments"),
        json={"offset": 1.0, "text": "mine"},
        headers=live_server.headers(doctor),
    ) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "review_forbidden"


async def test_a_reviewer_scores_the_rubric_and_pins_comments_to_times(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    reviewer = live_server.token("rev-1", "reviewer", name="Quality Reviewer")
    admin = live_server.token("admin-1", "admin")
    rid = recorded.recording_id
    async with live_server.http.put(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}",
        json={"retention_days": 90, "rubric": ["Consent", "Communication"]},
        headers=live_server.headers(admin),
    ) as response:
        assert response.status == 200, await response.text()

    async with live_server.http.post(
        url(live_server, rid, "/scores"),
        json={"scores": {"Consent": 5}, "comment": "incomplete"},
        headers=live_server.headers(reviewer),
    ) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "invalid_payload"
    async with live_server.http.post(
        url(live_server, rid, "/scores"),
        json={"scores": {"Consent": 5, "Communication": 4}, "comment": "Clear explanation"},
        headers=live_server.headers(reviewer),
    ) as response:
        assert response.status == 201, await response.text()
    async with live_server.http.post(
        url(live_server, rid, "/comments"),
        json={"offset": 1.5, "text": "Checks the patient's identity here"},
        headers=live_server.headers(reviewer),
    ) as response:
        assert response.status == 201

    _, scores = await get(live_server, url(live_server, rid, "/scores"), reviewer)
    assert scores["rubric"] == ["Consent", "Communication"]
    [review] = scores["reviews"]
    assert review["scores"] == [
        {"criterion": "Consent", "score": 5},
        {"criterion": "Communication", "score": 4},
    ]
    assert review["reviewer"]["name"] == "Quality Reviewer"
    _, comments = await get(live_server, url(live_server, rid, "/comments"), reviewer)
    assert [(c["offset"], c["text"]) for c in comments["comments"]] == [
        (1.5, "Checks the patient's identity here")
    ]
    _, timeline = await get(live_server, url(live_server, rid, "/timeline"), reviewer)
    kinds = [e["kind"] for e in timeline["events"]]
    for kind in ("joined", "admitted", "recording_consent", "recording_started"):
        assert kind in kinds
    started = next(e for e in timeline["events"] if e["kind"] == "recording_started")
    assert abs(started["offset"]) < 1.0


async def test_the_review_rendition_is_made_after_the_stop_and_leaves_the_originals(
    live_server: LiveServer, recorded: RecordedVisit
) -> None:
    reviewer = live_server.token("rev-1", "reviewer")
    rid = recorded.recording_id
    async with asyncio.timeout(60):
        while True:
            _, detail = await get(live_server, url(live_server, rid), reviewer)
            if detail["rendition"]["status"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.3)
    assert detail["rendition"] == {"status": "ready", "progress": 100, "file": "review.webm"}
    link = f"{live_server.url}{detail['links']['review.webm']}"
    async with live_server.http.get(link) as response:
        data = await response.read()
    folder = live_server.settings.recordings_dir / rid
    rendition = folder / "review.webm"
    assert rendition.read_bytes() == data
    with av.open(str(rendition)) as container:
        assert container.streams.video[0].codec_context.width == 640
        assert container.streams.audio
    for track in detail["manifest"]["tracks"]:
        digest = hashlib.sha256((folder / track["name"]).read_bytes()).hexdigest()
        assert digest == track["sha256"]


async def test_expired_recordings_are_deleted_and_the_deletion_is_audited(
    live_server: LiveServer, recorded: RecordedVisit, database_url: str
) -> None:
    admin = live_server.token("admin-1", "admin")
    reviewer = live_server.token("rev-1", "reviewer")
    rid = recorded.recording_id
    other_admin = live_server.token("admin-west", "admin", OTHER_HOSPITAL)
    async with live_server.http.post(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}/retention",
        headers=live_server.headers(other_admin),
    ) as response:
        assert response.status == 403
    async with live_server.http.put(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}",
        json={"retention_days": 1, "rubric": ["Consent"]},
        headers=live_server.headers(admin),
    ) as response:
        assert response.status == 200
    async with live_server.http.post(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}/retention",
        headers=live_server.headers(admin),
    ) as response:
        assert (await response.json())["deleted"] == [], "a day has not passed yet"
    await age_recording(database_url, rid, days=2)
    async with live_server.http.post(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}/retention",
        headers=live_server.headers(admin),
    ) as response:
        assert (await response.json())["deleted"] == [rid]

    assert not (live_server.settings.recordings_dir / rid).exists()
    status, listing = await get(live_server, f"{live_server.url}/api/recordings", reviewer)
    assert [r["status"] for r in listing["recordings"]] == ["deleted"]
    status, body = await get(live_server, url(live_server, rid), reviewer)
    assert status == 410 and body["error"]["code"] == "recording_deleted"
    deletions = [
        e for e in await audit_entries(live_server, resource_id=rid) if e["action"] == "delete"
    ]
    assert len(deletions) == 1
    assert deletions[0]["actor"]["sub"] == "teleconsult:retention"
    assert deletions[0]["detail"] == {"reason": "retention", "retention_days": 1}


async def test_retention_below_one_day_is_refused(live_server: LiveServer) -> None:
    admin = live_server.token("admin-1", "admin")
    async with live_server.http.put(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}",
        json={"retention_days": 0, "rubric": ["Consent"]},
        headers=live_server.headers(admin),
    ) as response:
        assert response.status == 422
        error = (await response.json())["error"]
    assert error["code"] == "invalid_payload"
    assert [d["field"] for d in error["details"]] == ["retention_days"]
    async with live_server.http.get(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}", headers=live_server.headers(admin)
    ) as response:
        assert (await response.json())["retention_days"] == 365, "the policy did not change"


def set_immutable(path: Path, immutable: bool) -> None:
    """Make a file one the storage refuses to delete, even for root (ext4's immutable flag)."""
    subprocess.run(["chattr", "+i" if immutable else "-i", str(path)], check=True)


async def age_recording(database_url: str, recording_id: str, days: int) -> None:
    """Move a recording's start `days` into the past, as if it were recorded then."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            await session.execute(
                update(Recording)
                .where(Recording.id == recording_id)
                .values(started_at=datetime.now(UTC) - timedelta(days=days))
            )
    finally:
        await database.dispose()


async def test_a_deletion_the_storage_refuses_keeps_the_recording_for_the_next_sweep(
    live_server: LiveServer, clients: Callable[..., Any], database_url: str
) -> None:
    _, doctor, _ = await join_visit(live_server, clients)
    started = await doctor.call(
        "start_recording", {"attested_consent": {"reason": "Patient agreed aloud"}}
    )
    assert (await doctor.call("stop_recording", {}))["ok"]
    rid = started["recording_id"]
    await age_recording(database_url, rid, days=2)
    admin = live_server.token("admin-1", "admin")
    reviewer = live_server.token("rev-1", "reviewer")
    async with live_server.http.put(
        f"{live_server.url}/api/recording-policies/{HOSPITAL}",
        json={"retention_days": 1, "rubric": ["Consent"]},
        headers=live_server.headers(admin),
    ) as response:
        assert response.status == 200, await response.text()
    manifest = live_server.settings.recordings_dir / rid / "manifest.json"
    assert manifest.is_file()

    async def sweep() -> dict[str, Any]:
        async with live_server.http.post(
            f"{live_server.url}/api/recording-policies/{HOSPITAL}/retention",
            headers=live_server.headers(admin),
        ) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    set_immutable(manifest, True)
    try:
        assert await sweep() == {"deleted": [], "failed": [rid]}
        status, body = await get(live_server, url(live_server, rid), reviewer)
        assert (status, body["status"]) == (200, "complete"), "kept, for the next sweep"
    finally:
        set_immutable(manifest, False)

    assert await sweep() == {"deleted": [rid], "failed": []}
    assert not (live_server.settings.recordings_dir / rid).exists()
    status, body = await get(live_server, url(live_server, rid), reviewer)
    assert status == 410 and body["error"]["code"] == "recording_deleted"
