"""Weak links (issue 10), in real Chromium: in a two-party visit on loopback the camera goes out
in three temporal layers (L1T3) and a screen share keeps its resolution; "Audio only" stops the
chooser's camera and the video they receive, and the other side's tile says so.

The shaped-link conference of the issue (one subscriber at 250 kbit/s with 3 % loss) is not
here yet: it does not pass (docs/protocol.md, "Weak links").
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.webrtc.conftest import (
    TeleconsultServer,
)
from tests.webrtc.visit_flow import (
    DOCTOR_SUB,
    PATIENT_SUB,
    NewContext,
    participant,
    remote_tile,
    schedule_visit,
    visit_in_progress,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(300)]

WIDTH, HEIGHT, FPS = 320, 240, 30

#: How long the test waits for what must happen before it calls it hung: a guard, not a bound.
HANG_GUARD = 30.0
HANG_GUARD_MS = int(HANG_GUARD * 1000)

#: Per remote camera tile: whose it is, and its video and audio inbound-rtp counters.
INBOUND = """
async () => {
  const pc = window.teleconsult.subscriberPc;
  if (!pc) return [];
  const byTrack = new Map();
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") byTrack.set(s.trackIdentifier, s);
  });
  const out = [];
  const tiles = 'video[data-participant-id][data-source="camera"]';
  for (const video of document.querySelectorAll(tiles)) {
    for (const track of video.srcObject ? video.srcObject.getTracks() : []) {
      const s = byTrack.get(track.id);
      if (!s) continue;
      out.push({
        participant: video.dataset.participantId,
        kind: s.kind,
        at: s.timestamp,
        frames: s.framesDecoded ?? 0,
        width: s.frameWidth ?? 0,
        packets: s.packetsReceived ?? 0,
        samples: s.totalSamplesReceived ?? 0,
        concealed: s.concealedSamples ?? 0,
        concealments: s.concealmentEvents ?? 0,
      });
    }
  }
  return out;
}
"""


async def inbound(page: Page) -> dict[tuple[str, str], dict[str, Any]]:
    """The page's inbound counters by (participant id, kind)."""
    return {(s["participant"], s["kind"]): s for s in await page.evaluate(INBOUND)}


def rates(
    before: dict[tuple[str, str], dict[str, Any]], after: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, tuple[float, int]]:
    """Frames decoded a second, and the frame width at the end, per publisher, between two reads."""
    out = {}
    for (who, kind), end in after.items():
        start = before.get((who, kind))
        if kind != "video" or start is None or end["at"] <= start["at"]:
            continue
        out[who] = (
            (end["frames"] - start["frames"]) * 1000 / (end["at"] - start["at"]),
            end["width"],
        )
    return out


CAMERA_LAYERS = """
async () => {
  const pc = window.teleconsult.publisherPc;
  // The first video transceiver is the camera's (a screen share comes later); its sender may be
  // empty (audio only), its receiver's kind says what it carries.
  const camera = pc.getTransceivers().find((t) => t.receiver.track.kind === "video");
  let outbound = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.mid === camera.mid) outbound = s;
  });
  return {
    asked: camera.sender.getParameters().encodings.map((e) => e.scalabilityMode ?? null),
    sent: outbound?.scalabilityMode ?? null,
    frames: outbound?.framesEncoded ?? 0,
  };
}
"""


#: How the doctor's screen share trades resolution against frame rate.
SCREEN_PREFERENCE = """
() => {
  const pc = window.teleconsult.publisherPc;
  const videos = pc.getTransceivers().filter((t) => t.receiver.track.kind === "video");
  // After the camera and its low layer.
  return videos[2]?.sender.getParameters().degradationPreference ?? null;
}
"""


async def test_camera_goes_out_in_temporal_layers_and_audio_only_pauses_video_both_ways(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", "e2e-hospital")
    consult = await schedule_visit(server, coordinator)
    doctor, patient, _ = await visit_in_progress(new_context, consult)
    layers = await doctor.evaluate(CAMERA_LAYERS)
    assert layers["asked"] == ["L1T3"] and layers["sent"] == "L1T3", layers
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    # Every tile, one's own too, rates its participant's connection in words.
    for page, other in ((doctor, patient_id), (patient, doctor_id)):
        for tile in (remote_tile(page, other), page.locator("figure.tile-local")):
            await expect(tile.locator(".badge-quality")).to_have_text(
                re.compile(r"^Connection: (good|fair|poor)$"), timeout=HANG_GUARD_MS
            )
    await doctor.get_by_role("button", name="Share screen", exact=True).click()
    await expect(doctor.get_by_role("button", name="Stop sharing", exact=True)).to_be_visible()
    screen = await doctor.evaluate(SCREEN_PREFERENCE)
    assert screen == "maintain-resolution", screen
    await doctor.get_by_role("button", name="Stop sharing", exact=True).click()

    button = patient.get_by_role("button", name="Audio only", exact=True)
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    await expect(patient.locator("#alert")).to_have_text("")
    # The server shows the others a participant's audio only as their camera turned off.
    await expect(remote_tile(doctor, patient_id).locator(".badge-camera-off")).to_have_text(
        "Camera is off", timeout=HANG_GUARD_MS
    )
    await expect(remote_tile(patient, doctor_id)).to_have_attribute(
        "data-video-paused", "audio_only"
    )
    frames = (await patient.evaluate(CAMERA_LAYERS))["frames"]
    await asyncio.sleep(1.0)
    again = (await patient.evaluate(CAMERA_LAYERS))["frames"]
    assert again == frames, "the patient's camera is still being encoded and sent"

    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "false")
    await expect(remote_tile(doctor, patient_id)).to_have_attribute(
        "data-camera-muted", "false", timeout=HANG_GUARD_MS
    )
    await expect(remote_tile(patient, doctor_id)).to_have_attribute("data-video-paused", "")
