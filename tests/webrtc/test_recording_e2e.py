"""Recording a visit in real Chromium, surviving a SIGKILL, and a reviewer playing it back.

The doctor and the patient are real Chromium pages on loopback; the server is a real
``teleconsult serve`` process. Files are checked with PyAV straight from the server's data
folder, and against the manifest's SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from playwright.async_api import Page, expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    DOCTOR_NAME,
    DOCTOR_SUB,
    HOSPITAL,
    PATIENT_NAME,
    PATIENT_SUB,
    NewContext,
    admit_from_lobby,
    expect_playing,
    join,
    open_link,
    participant,
    schedule_visit,
    visit_in_progress,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(150)]

RECORD_SECONDS = 10.0


async def api(server: TeleconsultServer, token: str, path: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def start_recording_with_consent(doctor: Page, patient: Page) -> float:
    """The patient agrees in their page, the host starts: both see the indicator."""
    await patient.get_by_role("button", name="I agree to this consult being recorded").click()
    await expect(doctor.locator("#recording-consent-status")).to_have_text(
        "The patient agreed to the recording."
    )
    await doctor.get_by_role("button", name="Start recording", exact=True).click()
    started = time.monotonic()
    for page in (doctor, patient):
        await expect(page.locator("#recording-indicator")).to_be_visible()
    return started


async def start_recording_with_consent_from_the_lobby(
    new_context: NewContext, consult: dict[str, Any]
) -> tuple[Page, Page, float]:
    """The patient agrees while waiting in the lobby; the host admits them and starts."""
    doctor_of, patient_of = participant(consult, DOCTOR_SUB), participant(consult, PATIENT_SUB)
    doctor = await open_link(new_context, doctor_of["join_url"])
    await join(doctor)
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")
    patient = await open_link(new_context, patient_of["join_url"])
    await join(patient)
    await expect(patient.locator("body")).to_have_attribute("data-view", "lobby")

    lobby = patient.locator("#view-lobby")
    await lobby.get_by_role("button", name="I agree to this consult being recorded").click()
    await expect(lobby.locator("#recording-consent-status")).to_have_text(
        "You agreed to this consult being recorded."
    )
    await expect(doctor.locator("#recording-consent-status")).to_have_text(
        "The patient agreed to the recording."
    )
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await asyncio.gather(
        expect_playing(patient, doctor_of["participant_id"]),
        expect_playing(doctor, patient_of["participant_id"]),
    )
    # Admitted, the patient's controls moved with them into the consult.
    consult_view = patient.locator("#view-consult")
    await expect(consult_view.get_by_role("button", name="Withdraw my agreement")).to_be_visible()

    await doctor.get_by_role("button", name="Start recording", exact=True).click()
    started = time.monotonic()
    await expect(doctor.get_by_role("dialog")).to_be_hidden()
    for page in (doctor, patient):
        await expect(page.locator("#recording-indicator")).to_contain_text(
            f"Started by {DOCTOR_NAME}."
        )
    return doctor, patient, started


def decode(path: Path) -> tuple[str, int, float]:
    """Decode a track file: its codec, its frames, the time of its last frame."""
    frames, last = 0, 0.0
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            frames += 1
            last = float(frame.time or 0.0)
        return stream.codec_context.name, frames, last


async def only_recording(server: TeleconsultServer, reviewer: str) -> dict[str, Any]:
    listing = await api(server, reviewer, "/api/recordings")
    [recording] = listing["recordings"]
    return await api(server, reviewer, f"/api/recordings/{recording['id']}")


async def test_a_visit_is_recorded_and_a_reviewer_plays_scores_and_comments_it(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    doctor, patient, _ = await visit_in_progress(new_context, consult)

    # Without the patient's agreement the host is asked to attest verbal consent.
    await doctor.get_by_role("button", name="Start recording", exact=True).click()
    await expect(doctor.get_by_role("dialog")).to_be_visible()
    await doctor.get_by_role("button", name="Cancel", exact=True).click()
    await expect(doctor.get_by_role("dialog")).to_be_hidden()

    started = await start_recording_with_consent(doctor, patient)
    await asyncio.sleep(RECORD_SECONDS)
    await doctor.get_by_role("button", name="Stop recording", exact=True).click()
    wall = time.monotonic() - started
    for page in (doctor, patient):
        await expect(page.locator("#recording-indicator")).to_be_hidden()

    reviewer = await asyncio.to_thread(
        server.token, "rev-1", "reviewer", HOSPITAL, name="Quality Reviewer"
    )
    detail = await only_recording(server, reviewer)
    manifest = detail["manifest"]
    assert manifest["status"] == "complete"
    assert manifest["consent"]["method"] == "patient"
    folder = server.data_dir / "recordings" / detail["id"]
    kinds = sorted(t["kind"] for t in manifest["tracks"])
    assert kinds == ["audio", "audio", "video", "video"], manifest["tracks"]
    for track in manifest["tracks"]:
        path = folder / track["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == track["sha256"]
        codec, frames, last = await asyncio.to_thread(decode, path)
        assert codec == ("vp8" if track["kind"] == "video" else "opus")
        # No longer than the recording ran, its frames reach the manifest's end, and never more
        # frames than were sent (the fake camera sends at most 30 fps here, Opus one per 20 ms).
        # How many a loaded machine delivers is printed, not asserted.
        assert 0 < track["duration"] <= wall + 0.5, (track, wall)
        assert last >= track["duration"] - 0.5
        per_second = frames / track["duration"]
        assert 0 < per_second <= (35 if track["kind"] == "video" else 55), (track, frames)
        duration = track["duration"]
        print(f"recorded {track['source']}: {duration:.2f} s of {wall:.2f} s, {frames} frames")

    # A reviewer opens the recording in the review page, plays it, scores it and comments.
    context = await new_context()
    page = await context.new_page()
    await page.goto(f"{server.base_url}/review?token={reviewer}")
    await page.get_by_role("button", name="Open Follow-up of hypertension", exact=False).click()
    player = page.locator("#player")
    await expect(player).to_have_attribute("data-file", "review.webm", timeout=60_000)
    await page.evaluate("document.getElementById('player').muted = true")
    await page.evaluate("document.getElementById('player').play()")
    async with asyncio.timeout(20):  # the page's CSP forbids wait_for_function's eval
        while await page.evaluate("document.getElementById('player').currentTime") <= 1.0:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    timeline = page.locator("#timeline")
    await expect(timeline.locator("li[data-kind=recording_consent]")).to_have_count(1)
    await timeline.locator("li[data-kind=recording_started] button").click()

    for criterion in await page.locator("#rubric fieldset").all():
        await criterion.get_by_label("4", exact=True).check()
    await page.locator("#score-comment").fill("Consent asked before recording; clear plan.")
    await page.get_by_role("button", name="Save score").click()
    await expect(page.locator("#reviews li")).to_contain_text("Quality Reviewer")

    await page.evaluate(
        "(() => { const p = document.getElementById('player'); p.pause(); p.currentTime = 3; })()"
    )
    await page.locator("#comment-text").fill("Confirms the patient's identity here.")
    await page.get_by_role("button", name="Add comment at 0:03").click()
    await expect(page.locator("#comments li")).to_contain_text("Confirms the patient's identity")
    assert await page.locator("#comments li").get_attribute("data-offset") == "3"

    admin = await asyncio.to_thread(server.token, "admin-1", "admin", HOSPITAL)
    audit_page = await context.new_page()
    await audit_page.goto(f"{server.base_url}/audit?token={admin}")
    views = audit_page.locator(f"tr[data-action=view][data-resource-id='{detail['id']}']")
    await expect(views.first).to_contain_text("rev-1")
    streams = audit_page.locator("tr[data-action=stream]")
    await expect(streams.first).to_be_visible()


async def test_a_recording_survives_a_sigkill_and_is_recovered_on_restart(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    _, _, started = await start_recording_with_consent_from_the_lobby(new_context, consult)
    await asyncio.sleep(6.0)

    server.kill()
    killed_after = time.monotonic() - started
    await server.start()

    reviewer = await asyncio.to_thread(server.token, "rev-1", "reviewer", HOSPITAL)
    detail = await only_recording(server, reviewer)
    assert detail["status"] == "recovered"
    manifest = detail["manifest"]
    assert manifest["status"] == "recovered"
    folder = server.data_dir / "recordings" / detail["id"]
    videos = [t for t in manifest["tracks"] if t["kind"] == "video"]
    assert len(videos) == 2 and len(manifest["tracks"]) == 4
    for track in manifest["tracks"]:
        path = folder / track["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == track["sha256"]
        _, frames, last = await asyncio.to_thread(decode, path)
        playable = track["start_offset"] + last
        print(f"after SIGKILL at {killed_after:.2f} s: {track['source']} plays to {playable:.2f} s")
        assert playable >= killed_after - 3.0, (track, killed_after)
        assert frames > 0
