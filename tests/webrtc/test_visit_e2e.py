"""A video visit end to end: a doctor and a patient in real Chromium, through `teleconsult serve`.

The visit is scheduled over REST, each participant opens their join link in their own browser
context, the patient waits in the lobby until the doctor admits them, and both see and hear each
other through the server, on loopback ICE pairs only. Mute and camera state cross to the other
side, "Leave" stops the patient's media, "End consult" ends the visit for both, and people
without a valid invitation are refused with a coded message.

The steps (join, admit, playback and getStats checks) live in tests/webrtc/visit_flow.py.
Each run prints the time from page load to the first remote video frame.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    DOCTOR_SUB,
    HOSPITAL,
    MEDIA_STOPPED,
    PATIENT_NAME,
    PATIENT_SUB,
    NewContext,
    expect_loopback_pairs,
    inbound_total,
    join,
    participant,
    print_first_frame_times,
    read_consult,
    remote_tile,
    schedule_visit,
    visit_in_progress,
    wait_inbound,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(90)]


async def test_visit_admit_video_mute_camera_and_leave(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    """The whole visit: lobby, admit, video and sound both ways on loopback, mute, leave."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]

    doctor, patient, admitted_at = await visit_in_progress(new_context, consult)
    await print_first_frame_times("visit", doctor, patient, admitted_at)

    for page in (doctor, patient):
        await expect_loopback_pairs(page)
        audio_before = await inbound_total(page, "audio", "packetsReceived")
        await wait_inbound(page, "audio", "packetsReceived", audio_before + 10)

    # The patient mutes the microphone: the doctor sees it on the patient's tile.
    await patient.get_by_role("button", name="Mute", exact=True).click()
    await expect(patient.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
    patient_tile = remote_tile(doctor, patient_id)
    await expect(patient_tile).to_have_attribute("data-mic-muted", "true")
    await expect(patient_tile.get_by_text("Muted", exact=True)).to_be_visible()
    await patient.get_by_role("button", name="Unmute", exact=True).click()
    await expect(patient_tile).to_have_attribute("data-mic-muted", "false")
    await expect(patient_tile.get_by_text("Muted", exact=True)).to_be_hidden()

    # The doctor turns the camera off: the patient sees it on the doctor's tile.
    await doctor.get_by_role("button", name="Camera off", exact=True).click()
    await expect(doctor.get_by_role("button", name="Camera on", exact=True)).to_be_visible()
    doctor_tile = remote_tile(patient, doctor_id)
    await expect(doctor_tile).to_have_attribute("data-camera-muted", "true")
    await expect(doctor_tile).to_have_attribute("data-has-video", "false")
    await expect(doctor_tile.get_by_text("Camera is off", exact=True)).to_be_visible()

    # The patient leaves: their media stops, the doctor's grid loses their tile.
    await patient.get_by_role("button", name="Leave", exact=True).click()
    await expect(patient.locator("body")).to_have_attribute("data-view", "ended")
    await expect(patient.get_by_role("heading", name="You left the consult")).to_be_visible()
    stopped = await patient.evaluate(MEDIA_STOPPED)
    assert sorted(stopped["tracks"]) == ["audio:ended", "video:ended"], stopped
    assert (stopped["publisher"], stopped["subscriber"]) == ("closed", "closed"), stopped
    await expect(patient_tile).to_have_count(0)
    await expect(doctor.locator("#announcer")).to_have_text(f"{PATIENT_NAME} left the consult.")
    await expect(doctor.locator("#video-grid")).to_have_attribute("data-count", "1")
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")


async def test_doctor_ends_visit_for_both_and_rejoining_is_refused(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    """ "End consult" ends the visit on both pages; the patient's link then says it has ended."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    doctor, patient, admitted_at = await visit_in_progress(new_context, consult)
    await print_first_frame_times("end", doctor, patient, admitted_at)

    await doctor.get_by_role("button", name="End consult", exact=True).click()
    for page in (doctor, patient):
        await expect(page.locator("body")).to_have_attribute("data-view", "ended")
        await expect(page.get_by_role("heading", name="The consult has ended")).to_be_visible()
        stopped = await page.evaluate(MEDIA_STOPPED)
        assert sorted(stopped["tracks"]) == ["audio:ended", "video:ended"], stopped
        assert (stopped["publisher"], stopped["subscriber"]) == ("closed", "closed"), stopped

    await patient.goto(participant(consult, PATIENT_SUB)["join_url"])
    await join(patient)
    alert = patient.locator("#alert")
    await expect(alert).to_have_attribute("data-error-code", "consult_ended")
    await expect(alert).to_have_text("This consult has ended.")
    await expect(patient.locator("body")).to_have_attribute("data-view", "join")
    assert (await read_consult(server, coordinator, consult["id"]))["state"] == "ended"


async def test_uninvited_and_expired_links_are_refused(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    """A link of another consult, an uninvited patient and an expired link: coded refusals."""
    coordinator, stranger, expired_patient = await asyncio.gather(
        asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL),
        asyncio.to_thread(server.token, "pt-zhao", "patient", HOSPITAL, name="Zhao Lei"),
        asyncio.to_thread(server.token, PATIENT_SUB, "patient", HOSPITAL, ttl=-60),
    )
    consult = await schedule_visit(server, coordinator)
    other = await schedule_visit(
        server,
        coordinator,
        participants=[{"sub": "pt-zhao", "name": "Zhao Lei", "role": "patient"}],
    )
    other_link_token = participant(other, "pt-zhao")["join_url"].split("token=", 1)[1]
    visit_url = f"{server.base_url}/join/{consult['id']}"

    context = await new_context()
    cases = [
        (
            other_link_token,
            "wrong_consult",
            "This link is for another consult. Open the link you were sent for this one.",
        ),
        (stranger, "not_invited", "You are not invited to this consult."),
        (
            expired_patient,
            "token_expired",
            "This link has expired. Ask the hospital for a new link.",
        ),
    ]
    for token, code, message in cases:
        page = await context.new_page()
        await page.goto(f"{visit_url}?token={token}")
        await join(page)
        alert = page.locator("#alert")
        await expect(alert).to_have_attribute("data-error-code", code)
        await expect(alert).to_have_text(message)
        await expect(page.locator("body")).to_have_attribute("data-view", "join")

    assert (await read_consult(server, coordinator, consult["id"]))["state"] == "scheduled"
