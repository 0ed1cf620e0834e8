"""Doctor and patient see and hear each other through the server (real aiortc peers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.live import LiveServer, join_token, participant_id
from tests.integration.media_client import MediaClient


async def test_doctor_and_patient_receive_each_others_video_and_audio(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult = await live_server.schedule_visit()
    doctor_signaling = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    assert (await doctor_signaling.call("join", {"consult_id": consult["id"]}))["ok"]
    patient_signaling = await clients(live_server.url, join_token(consult, "pt-li"))
    assert (await patient_signaling.call("join", {"consult_id": consult["id"]}))["ok"]
    await doctor_signaling.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient_signaling.next("admitted")

    doctor, patient = MediaClient(doctor_signaling), MediaClient(patient_signaling)
    try:
        await doctor.publish()
        await patient.publish()
        doctor_id, patient_id = participant_id(consult, "dr-wang"), participant_id(consult, "pt-li")
        assert await patient.wait_for(doctor_id, "video", 30, timeout=30) >= 30
        assert await doctor.wait_for(patient_id, "video", 30, timeout=30) >= 30
        assert await patient.wait_for(doctor_id, "audio", 50, timeout=30) >= 50
        assert await doctor.wait_for(patient_id, "audio", 50, timeout=30) >= 50
    finally:
        await doctor.close()
        await patient.close()
