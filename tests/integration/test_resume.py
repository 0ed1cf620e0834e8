"""A dropped participant resumes their seat: real server, real aiortc clients (issue 9).

The patient's connection drops: the doctor sees "reconnecting", not a departure; the patient
comes back on a new connection with the resume token from the join, new peer connections take
over the doctor's receivers without a new offer, the recording goes on with a new segment, and
the timeline holds one reconnect. Tokens of others, forged or too old are refused; a seat
nobody resumes is given up after the grace period; a restarted server takes its clients back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import pytest
import socketio

from config.settings import Settings
from rooms.identity import Identity, Role
from signaling.resume import ResumeTokens, Seat
from tests.conftest import free_tcp_port
from tests.integration.live import (
    LiveServer,
    SignalingClient,
    join_token,
    participant_id,
    serving,
)
from tests.integration.media_client import MediaClient
from tests.log_scan import register_secret

Connect = Callable[..., Any]
#: A grace period no test waits for, and one that runs out during a test.
LONG_GRACE, SHORT_GRACE = 60.0, 1.0
#: How long the dropped patient stays away before resuming.
AWAY = 0.5


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Resuming is signaling and media, not storage: SQLite, the default, is enough here (a
    resume's one database write is a join's, which the other tests run on both databases)."""
    return sqlite_url


@pytest.fixture
async def server_with_grace(
    database_url: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Callable[[float], Any]]:
    """Start servers whose reconnection grace period the test chooses."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(grace: float) -> LiveServer:
            settings = settings_factory(database_url=database_url, reconnect_grace_seconds=grace)
            return await stack.enter_async_context(serving(settings))

        yield start


async def visit(
    server: LiveServer, clients: Connect
) -> tuple[dict[str, Any], SignalingClient, SignalingClient, str, str]:
    """Doctor and patient in a live visit; the patient's and the doctor's resume tokens."""
    consult = await server.schedule_visit()
    doctor = await clients(server.url, server.token_of(consult, "dr-wang"))
    doctor_joined = await doctor.call("join", {"consult_id": consult["id"]})
    assert doctor_joined["ok"]
    patient = await clients(server.url, join_token(consult, "pt-li"))
    joined = await patient.call("join", {"consult_id": consult["id"]})
    assert joined["ok"] and joined["resume_token"]
    register_secret(joined["resume_token"], doctor_joined["resume_token"])
    await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient.next("admitted")
    await doctor.next("participant_joined")
    return consult, doctor, patient, joined["resume_token"], doctor_joined["resume_token"]


async def timeline_kinds(server: LiveServer, consult_id: str) -> list[str]:
    async with server.http.get(
        f"{server.url}/api/consults/{consult_id}/timeline",
        headers=server.headers(server.token("dr-wang", "doctor")),
    ) as response:
        assert response.status == 200, await response.text()
        return [event["kind"] for event in (await response.json())["events"]]


async def test_a_dropped_patient_resumes_the_seat_and_media_comes_back_without_a_new_offer(
    server_with_grace: Callable[[float], Any], clients: Connect
) -> None:
    server = await server_with_grace(LONG_GRACE)
    consult, doctor, patient, resume_token, _ = await visit(server, clients)
    patient_id, doctor_id = participant_id(consult, "pt-li"), participant_id(consult, "dr-wang")
    doctor_media, patient_media = MediaClient(doctor), MediaClient(patient)
    resumed_media: MediaClient | None = None
    try:
        await doctor_media.publish()
        await patient_media.publish()
        before = await doctor_media.wait_for(patient_id, "video", 10, timeout=30)
        assert (await patient.call("recording_consent", {"agree": True}))["ok"]
        started = await doctor.call("start_recording", {})
        assert started["ok"], started
        await doctor_media.wait_for(patient_id, "video", before + 10, timeout=30)

        await patient.client.eio.disconnect(abort=True)  # the network goes, no goodbye
        dropped = await doctor.next("participant_reconnecting")
        assert dropped["participant_id"] == patient_id and dropped["status"] == "reconnecting"
        offers_before = doctor.events["subscriber_offer"].qsize()
        await asyncio.sleep(AWAY)  # the patient is away a moment (a lift, a tunnel)

        back = await clients(server.url, None, resume_token=resume_token)
        resumed = await back.call(
            "resume", {"consult_id": consult["id"], "resume_token": resume_token}
        )
        assert resumed["ok"], resumed
        assert resumed["status"] == "joined", "an admitted patient does not go back to the lobby"
        assert resumed["resume_token"] and resumed["participant"]["participant_id"] == patient_id
        returned = await doctor.next("participant_updated")
        assert returned["participant_id"] == patient_id and returned["status"] == "joined"

        await patient_media.close()
        resumed_media = MediaClient(back)
        await resumed_media.publish(restart=True)
        received = doctor_media.received[(patient_id, "video")]
        await doctor_media.wait_for(patient_id, "video", received + 30, timeout=30)
        await doctor_media.wait_for(patient_id, "audio", 50, timeout=30)
        await resumed_media.wait_for(doctor_id, "video", 10, timeout=30)
        assert doctor.events["subscriber_offer"].qsize() == offers_before, (
            "the doctor's connection took the patient's new tracks without a new offer"
        )
        assert doctor.events["participant_left"].empty()
        assert doctor.events["participant_joined"].empty()

        stopped = await doctor.call("stop_recording", {})
        assert stopped["ok"], stopped
    finally:
        await doctor_media.close()
        await patient_media.close()
        if resumed_media is not None:
            await resumed_media.close()

    async with server.http.get(
        f"{server.url}/api/consults/{consult['id']}/timeline",
        headers=server.headers(server.token("dr-wang", "doctor")),
    ) as response:
        events = (await response.json())["events"]
    kinds = [event["kind"] for event in events]
    assert kinds.count("reconnected") == 1
    [reconnect] = [event for event in events if event["kind"] == "reconnected"]
    assert reconnect["detail"]["away_seconds"] >= AWAY, "the timeline says how long the gap was"
    assert "disconnected" not in kinds and "left" not in kinds
    assert (kinds.count("joined"), kinds.count("waiting")) == (1, 1), "one arrival each"

    manifest = await recording_manifest(server, started["recording_id"])
    segments = sorted(t["name"] for t in manifest["tracks"] if t["participant_id"] == patient_id)
    assert segments == [
        f"{patient_id}-camera-1.webm",
        f"{patient_id}-camera-2.webm",
        f"{patient_id}-microphone-1.webm",
        f"{patient_id}-microphone-2.webm",
    ], "one recording, a new segment of each of the patient's tracks after the reconnect"
    folder = server.settings.recordings_dir / started["recording_id"]
    for name in segments:
        with av.open(str(folder / name)) as container:
            assert sum(1 for _ in container.demux()) > 1, f"{name} does not play"
    camera = [t for t in manifest["tracks"] if t["name"].startswith(f"{patient_id}-camera")]
    first, second = sorted(camera, key=lambda t: t["start_offset"])
    assert second["start_offset"] >= first["start_offset"] + first["duration"], "a gap, no overlap"


async def recording_manifest(server: LiveServer, recording_id: str) -> dict[str, Any]:
    admin = server.token("admin-1", "admin")
    for _ in range(100):  # the catalogue takes the stopped recording in the background
        async with server.http.get(
            f"{server.url}/api/recordings/{recording_id}", headers=server.headers(admin)
        ) as response:
            if response.status == 200:
                detail = await response.json()
                if detail.get("manifest", {}).get("status") != "recording":
                    return detail["manifest"]
        await asyncio.sleep(0.1)
    raise AssertionError("the recording was not catalogued")


async def test_a_seat_nobody_resumes_is_given_up_after_the_grace_period(
    server_with_grace: Callable[[float], Any], clients: Connect
) -> None:
    server = await server_with_grace(SHORT_GRACE)
    consult, doctor, patient, _, _ = await visit(server, clients)
    patient_id = participant_id(consult, "pt-li")
    refreshed = (await doctor.next("resume_token"))["resume_token"]
    tokens = ResumeTokens(server.settings.signing_secret(), SHORT_GRACE)
    assert tokens.seat(refreshed).participant_id == participant_id(consult, "dr-wang"), (
        "a participant who stays is sent fresh resume tokens"
    )

    await patient.client.eio.disconnect(abort=True)
    assert (await doctor.next("participant_reconnecting"))["participant_id"] == patient_id
    left = await doctor.next("participant_left", timeout=SHORT_GRACE + 10)
    assert left == {"participant_id": patient_id}
    assert (await timeline_kinds(server, consult["id"]))[-1] == "disconnected"


async def test_the_host_removes_a_reconnecting_participant_and_the_seat_is_not_resumed(
    server_with_grace: Callable[[float], Any], clients: Connect
) -> None:
    server = await server_with_grace(LONG_GRACE)
    consult, doctor, patient, resume_token, _ = await visit(server, clients)
    patient_id = participant_id(consult, "pt-li")
    await patient.client.eio.disconnect(abort=True)
    assert (await doctor.next("participant_reconnecting"))["participant_id"] == patient_id

    removed = await doctor.call("remove_participant", {"participant_id": patient_id})
    assert removed["ok"], removed
    assert await doctor.next("participant_left") == {"participant_id": patient_id}
    back = await clients(server.url, join_token(consult, "pt-li"))
    refused = await back.call("resume", {"consult_id": consult["id"], "resume_token": resume_token})
    assert not refused["ok"], "a removed participant does not take the seat back"
    assert doctor.events["participant_updated"].empty()


async def test_a_resume_token_is_refused_for_another_participant_forged_or_too_old(
    server_with_grace: Callable[[float], Any], clients: Connect
) -> None:
    server = await server_with_grace(LONG_GRACE)
    consult, doctor, patient, patient_token, _ = await visit(server, clients)
    patient_id = participant_id(consult, "pt-li")

    # The doctor's connection presents the patient's token: refused, nothing taken over.
    intruder = await clients(server.url, server.token("dr-wang", "doctor"))
    refused = await intruder.call(
        "resume", {"consult_id": consult["id"], "resume_token": patient_token}
    )
    assert refused["error"]["code"] == "resume_refused"

    forged = patient_token[:-4] + ("AAAA" if not patient_token.endswith("AAAA") else "BBBB")
    refused = await intruder.call("resume", {"consult_id": consult["id"], "resume_token": forged})
    assert refused["error"]["code"] == "resume_refused"

    secret = server.settings.signing_secret()
    patient_identity = Identity("pt-li", "Li Hua", Role.PATIENT, "h-east", consult["id"])
    old = ResumeTokens(secret, -60).mint(Seat(consult["id"], patient_id, patient_identity))
    await patient.client.eio.disconnect(abort=True)
    await doctor.next("participant_reconnecting")
    back = await clients(server.url, join_token(consult, "pt-li"))
    refused = await back.call("resume", {"consult_id": consult["id"], "resume_token": old})
    assert refused["error"]["code"] == "resume_expired"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients(server.url, None, resume_token=old)
    assert doctor.events["participant_left"].empty(), "a refused resume gives nothing up"


async def test_a_restarted_server_says_it_goes_away_and_takes_its_clients_back(
    database_url: str, settings_factory: Callable[..., Settings], clients: Connect
) -> None:
    settings = settings_factory(database_url=database_url)
    port = free_tcp_port()
    async with serving(settings, port) as server:
        consult, doctor, patient, patient_token, doctor_token = await visit(server, clients)
    # Stopping the server told everyone first.
    for signaling in (doctor, patient):
        assert await signaling.next("server_going_away") == {}

    async with serving(settings_factory(database_url=database_url), port) as restarted:
        patient_back = await clients(restarted.url, None, resume_token=patient_token)
        resumed = await patient_back.call(
            "resume", {"consult_id": consult["id"], "resume_token": patient_token}
        )
        assert resumed["ok"] and resumed["status"] == "joined", resumed
        doctor_back = await clients(restarted.url, None, resume_token=doctor_token)
        resumed = await doctor_back.call(
            "resume", {"consult_id": consult["id"], "resume_token": doctor_token}
        )
        assert resumed["ok"] and resumed["status"] == "joined", resumed
        kinds = await timeline_kinds(restarted, consult["id"])
    assert kinds.count("reconnected") == 2
    assert "disconnected" not in kinds
