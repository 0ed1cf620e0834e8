"""A participant who publishes nothing (camera and microphone refused) still receives everyone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.live import LiveServer, join_token, participant_id
from tests.integration.media_client import MediaClient


async def test_a_patient_without_camera_or_microphone_receives_the_doctor(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult = await live_server.schedule_visit()
    doctor_signaling = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    assert (await doctor_signaling.call("join", {"consult_id": consult["id"]}))["ok"]
    patient_signaling = await clients(live_server.url, join_token(consult, "pt-li"))
    assert (await patient_signaling.call("join", {"consult_id": consult["id"]}))["ok"]

    # From the lobby, nothing is received yet.
    refused = await patient_signaling.call("subscribe", {})
    assert refused["error"]["code"] == "in_lobby"

    await doctor_signaling.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient_signaling.next("admitted")
    doctor, patient = MediaClient(doctor_signaling), MediaClient(patient_signaling)
    try:
        await doctor.publish()
        await patient.subscribe()
        doctor_id = participant_id(consult, "dr-wang")
        assert await patient.wait_for(doctor_id, "video", 30, timeout=30) >= 30
        assert await patient.wait_for(doctor_id, "audio", 50, timeout=30) >= 50
    finally:
        await doctor.close()
        await patient.close()


async def test_subscribe_needs_a_joined_consult(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult = await live_server.schedule_visit()
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    refused = await patient.call("subscribe", {})
    assert refused["error"]["code"] == "not_joined"
