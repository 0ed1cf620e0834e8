"""Doctor and patient see and hear each other through the server (real aiortc peers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.live import LiveServer, admitted_visit, participant_id
from tests.integration.media_client import MediaClient


async def test_doctor_and_patient_receive_each_others_video_and_audio(
    live_server: LiveServer, clients: Callable[..., Any]
) -> None:
    consult, doctor_signaling, patient_signaling = await admitted_visit(live_server, clients)

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
