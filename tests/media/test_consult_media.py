"""Participants of one consult see and hear each other through the forwarding SFU."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from media import ConsultMedia

from .clients import TestParticipant, wait_until
from .conftest import BOTH_RECEIVE_PATHS

pytestmark = BOTH_RECEIVE_PATHS


async def start(make: Callable[[str], TestParticipant], *ids: str) -> list[TestParticipant]:
    people = [make(participant_id) for participant_id in ids]
    for person in people:
        await person.join()
        await person.publish()
    return people


def senders(person: TestParticipant) -> set[str]:
    return {origin["participant_id"] for origin in person.tracks().values()}


async def test_doctor_and_patient_see_and_hear_each_other(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = await start(participants, "doctor", "patient")

    await wait_until(
        lambda: all(
            viewer.frames_from(other, "camera") >= 30
            and viewer.frames_from(other, "microphone") >= 30
            for viewer, other in ((doctor, "patient"), (patient, "doctor"))
        ),
        timeout=10,
    )
    assert sorted(o["source"] for o in doctor.tracks().values()) == ["camera", "microphone"]
    assert senders(patient) == {"doctor"}


async def test_h264_camera_reaches_the_other_side_as_h264(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await patient.join()
    await doctor.publish(video_codec="video/H264")
    await patient.publish()

    await wait_until(lambda: patient.frames_from("doctor", "camera") >= 30)
    offer = patient.offers[-1]["sdp"]
    video_section = offer[offer.index("m=video") :]
    assert "H264/90000" in video_section and "VP8/90000" not in video_section


async def test_server_offers_only_loopback_candidates(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor = participants("doctor")
    await doctor.join()
    answer = await doctor.publish()

    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates
    assert all(line.split()[4] == "127.0.0.1" for line in candidates)


async def test_expert_joining_later_sees_video_from_a_keyframe_requested_for_them(
    participants: Callable[[str], TestParticipant],
) -> None:
    _doctor, patient = await start(participants, "doctor", "patient")
    await wait_until(lambda: patient.frames_from("doctor", "camera") >= 5)
    # Well past the doctor's first keyframe: the expert needs one requested by PLI.
    await asyncio.sleep(1)

    expert = participants("expert")
    joined_at = time.monotonic()
    await expert.join()
    # The expert decodes: a first frame means a keyframe reached them, and the doctor's
    # encoder makes one only when asked (its own interval is far longer than this test).
    await wait_until(lambda: expert.frames_from("doctor", "camera") >= 1)

    first = expert.first_frame_from("doctor", "camera")
    assert first is not None
    print(f"\nlate expert: first frame {first - joined_at:.2f} s after joining (bench/join.py)")


async def test_leaving_participant_disappears_from_the_others_offers(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant]
) -> None:
    doctor, _patient, expert = await start(participants, "doctor", "patient", "expert")
    await wait_until(lambda: doctor.frames_from("patient", "camera") >= 5)
    sections_before = doctor.offers[-1]["sdp"].count("\nm=")

    await consult.leave("patient")

    await wait_until(lambda: senders(doctor) == {"expert"})
    await wait_until(lambda: senders(expert) == {"doctor"})
    frames = doctor.frames_from("expert", "camera")
    await wait_until(lambda: doctor.frames_from("expert", "camera") > frames + 10)

    # The patient's now inactive sections are reused for the next one to join.
    family = participants("family")
    await family.join()
    await family.publish()
    await wait_until(lambda: senders(doctor) == {"expert", "family"})
    assert doctor.offers[-1]["sdp"].count("\nm=") == sections_before
    await wait_until(lambda: doctor.frames_from("family", "camera") >= 5)


async def test_muted_camera_stops_being_forwarded_until_unmuted(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant]
) -> None:
    doctor, _patient = await start(participants, "doctor", "patient")
    await wait_until(lambda: doctor.frames_from("patient", "camera") >= 10)

    consult.set_muted("patient", "camera", True)
    await asyncio.sleep(0.3)  # frames already on their way
    frames = doctor.frames_from("patient", "camera")
    audio = doctor.frames_from("patient", "microphone")
    await asyncio.sleep(1)
    assert doctor.frames_from("patient", "camera") == frames
    assert doctor.frames_from("patient", "microphone") > audio

    consult.set_muted("patient", "camera", False)
    await wait_until(lambda: doctor.frames_from("patient", "camera") > frames + 10)
