"""A recording's life: what stops it besides the host (consent withdrawn, no recorder left, its
limits), that everyone is told why, and that retention keeps what it could not delete."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from config.settings import Settings
from tests.integration.live import (
    LiveServer,
    SignalingClient,
    join_token,
    participant_id,
    serving,
)
from tests.integration.media_client import MediaClient

ATTESTED = {"attested_consent": {"reason": "Patient agreed aloud on the phone"}}
#: A reconnection grace period short enough to wait for.
GRACE = 1.0


async def join_visit(
    server: LiveServer, clients: Callable[..., Any]
) -> tuple[dict[str, Any], SignalingClient, SignalingClient]:
    """Dr. Wang and Li Hua in a visit, the patient admitted; both hear the recording state."""
    consult = await server.schedule_visit()
    doctor = await clients(server.url, server.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    patient = await clients(server.url, join_token(consult, "pt-li"))
    assert (await patient.call("join", {"consult_id": consult["id"]}))["ok"]
    for person in (doctor, patient):
        person.client.on("recording_state", person.events["recording_state"].put_nowait)
    await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient.next("admitted")
    return consult, doctor, patient


async def next_stop(person: SignalingClient, timeout: float = 20) -> dict[str, Any]:
    """The next ``recording_state`` that announces a stop."""
    async with asyncio.timeout(timeout):
        while True:
            state: dict[str, Any] = await person.next("recording_state", timeout)
            if state.get("stop_reason") is not None:
                return state


async def stops_on_timeline(server: LiveServer, consult_id: str) -> list[dict[str, Any]]:
    """The consult's ``recording_stopped`` entries, as its doctor reads them."""
    async with server.http.get(
        f"{server.url}/api/consults/{consult_id}/timeline",
        headers=server.headers(server.token("dr-wang", "doctor")),
    ) as response:
        assert response.status == 200, await response.text()
        events = (await response.json())["events"]
    return [event for event in events if event["kind"] == "recording_stopped"]


async def recording_row(server: LiveServer, recording_id: str) -> dict[str, Any]:
    """A recording as a reviewer of the hospital sees it."""
    async with server.http.get(
        f"{server.url}/api/recordings/{recording_id}",
        headers=server.headers(server.token("rev-1", "reviewer")),
    ) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


@pytest.fixture
async def limited_server(
    database_url: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Any]]:
    """Start a server whose recordings have the given limits."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**limits: Any) -> LiveServer:
            settings = settings_factory(database_url=database_url, **limits)
            return await stack.enter_async_context(serving(settings))

        yield start


async def test_a_withdrawn_consent_stops_the_recording_and_no_attestation_overrides_it(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult, doctor, patient = await join_visit(live_server, clients)
    assert (await patient.call("recording_consent", {"agree": True}))["ok"]
    started = await doctor.call("start_recording", {})
    assert started["ok"] and started["recording"], started

    withdrawn = await patient.call("recording_consent", {"agree": False})
    assert withdrawn["ok"] and not withdrawn["recording"], withdrawn
    for person in (doctor, patient):
        seen = await next_stop(person)
        assert seen["stop_reason"] == "consent_withdrawn" and not seen["recording"]
        assert seen["consent"]["withdrawn"] and not seen["consent"]["given"]

    for attempt in ({}, ATTESTED):
        refused = await doctor.call("start_recording", attempt)
        assert refused["error"]["code"] == "consent_withdrawn", refused
    stops = await stops_on_timeline(live_server, consult["id"])
    assert [s["detail"]["reason"] for s in stops] == ["consent_withdrawn"]
    assert stops[0]["detail"]["recording_id"] == started["recording_id"]

    # Only the patient can undo their own withdrawal.
    assert (await patient.call("recording_consent", {"agree": True}))["ok"]
    again = await doctor.call("start_recording", {})
    assert again["ok"] and again["recording"], again
    assert (await doctor.call("stop_recording", {}))["ok"]
    assert (await next_stop(patient))["stop_reason"] == "host"


async def test_the_recording_stops_when_nobody_who_may_stop_it_is_left(
    database_url: str, settings_factory: Callable[..., Settings], clients: Callable[..., Any]
) -> None:
    settings = settings_factory(database_url=database_url, reconnect_grace_seconds=GRACE)
    async with serving(settings) as live_server:
        consult, doctor, patient = await join_visit(live_server, clients)
        started = await doctor.call("start_recording", ATTESTED)
        assert started["ok"] and started["recording"], started

        # The doctor's network drops and they do not come back: while their seat is held
        # (a blip), the recording goes on; once it is given up, nobody may record.
        await doctor.close()
        reconnecting = await patient.next("participant_reconnecting")
        states = patient.events["recording_state"]
        so_far = [states.get_nowait() for _ in range(states.qsize())]
        assert all(state["recording"] for state in so_far), "a blip does not stop the recording"
        await patient.next("participant_left", timeout=GRACE + 10)
        seen = await next_stop(patient)
        assert seen["stop_reason"] == "no_recorder_left" and not seen["recording"]
        assert reconnecting["participant_id"] == participant_id(consult, "dr-wang")
        await check_stopped_for_no_recorder(live_server, consult, started["recording_id"])


async def check_stopped_for_no_recorder(
    live_server: LiveServer, consult: dict[str, Any], recording_id: str
) -> None:
    stops = await stops_on_timeline(live_server, consult["id"])
    assert [s["detail"]["reason"] for s in stops] == ["no_recorder_left"]
    assert stops[0]["actor"]["sub"] == "teleconsult:recorder"
    assert (await recording_row(live_server, recording_id))["status"] == "complete"


async def test_the_patient_leaving_does_not_stop_the_recording(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult, doctor, patient = await join_visit(live_server, clients)
    assert (await doctor.call("start_recording", ATTESTED))["ok"]

    assert (await patient.call("leave"))["ok"]

    await doctor.next("participant_left")
    assert (await doctor.call("stop_recording", {}))["ok"], "still running: the host stops it"
    stops = await stops_on_timeline(live_server, consult["id"])
    assert [s["detail"]["reason"] for s in stops] == ["host"]


async def test_a_recording_stops_at_its_maximum_duration(
    limited_server: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    server = await limited_server(recording_max_seconds=1)
    consult, doctor, patient = await join_visit(server, clients)
    started = await doctor.call("start_recording", ATTESTED)
    assert started["ok"] and started["recording"], started

    for person in (doctor, patient):
        seen = await next_stop(person)
        assert seen["stop_reason"] == "max_duration" and not seen["recording"]
    stops = await stops_on_timeline(server, consult["id"])
    assert [s["detail"]["reason"] for s in stops] == ["max_duration"]
    assert (await recording_row(server, started["recording_id"]))["status"] == "complete"
    refused = await doctor.call("stop_recording", {})
    assert refused["error"]["code"] == "not_recording"


async def test_a_recording_stops_when_its_files_reach_the_quota(
    limited_server: Callable[..., Any], clients: Callable[..., Any]
) -> None:
    quota = 64 * 1024
    server = await limited_server(recording_quota_bytes=quota)
    consult, doctor, patient = await join_visit(server, clients)
    doctor_media, patient_media = MediaClient(doctor), MediaClient(patient)
    try:
        await doctor_media.publish()
        await patient_media.publish()
        await patient_media.wait_for(participant_id(consult, "dr-wang"), "video", 5, timeout=30)
        started = await doctor.call("start_recording", ATTESTED)
        assert started["ok"] and started["recording"], started

        seen = await next_stop(patient, timeout=60)
        assert seen["stop_reason"] == "quota" and not seen["recording"]
    finally:
        await doctor_media.close()
        await patient_media.close()
    row = await recording_row(server, started["recording_id"])
    assert row["status"] == "complete"
    folder = server.settings.recordings_dir / started["recording_id"]
    assert sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) >= quota
    stops = await stops_on_timeline(server, consult["id"])
    assert [s["detail"]["reason"] for s in stops] == ["quota"]
