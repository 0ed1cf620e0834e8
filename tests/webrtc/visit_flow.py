"""Steps of a visit in real Chromium, shared by the browser tests: open a link, join, admit,
check playback and ICE pairs with getStats, time the first remote frame."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from playwright.async_api import BrowserContext, Locator, Page, expect

from tests.webrtc.conftest import TeleconsultServer

HOSPITAL = "e2e-hospital"
DOCTOR_SUB, DOCTOR_NAME = "dr-wang", "Dr. Wang Fang"
PATIENT_SUB, PATIENT_NAME = "pt-li", "Li Hua"
# Generous: the machine is shared with other engineers' test runs.
MEDIA_TIMEOUT_MS = 30_000
FRAMES_WANTED = 30

NewContext = Callable[..., Awaitable[BrowserContext]]

# Runs before the page's own scripts: note when the first remote video frame can be shown
# (a remote <video> carries data-participant-id and has a width), in ms since the page load.
FIRST_REMOTE_FRAME_PROBE = """
(() => {
  const mark = (event) => {
    const video = event.target;
    if (!(video instanceof HTMLVideoElement) || !video.dataset.participantId) return;
    if (video.videoWidth > 0 && window.firstRemoteFrameMs === undefined) {
      window.firstRemoteFrameMs = performance.now();
      window.firstRemoteFrameEpochMs = performance.timeOrigin + performance.now();
    }
  };
  for (const type of ["loadeddata", "resize", "playing", "timeupdate"]) {
    document.addEventListener(type, mark, true);
  }
})();
"""

# Runs before the page's scripts: when each remote camera last presented a new frame (epoch ms),
# which tiles were removed, and the labels a tile showed while marked reconnecting.
RECONNECT_PROBE = """
(() => {
  window.remoteFrameAt = {};
  window.tileRemovals = [];
  window.reconnectingLabels = [];
  window.pageLoads = (window.pageLoads ?? 0) + 1;
  const watched = new WeakSet();
  const watch = (video) => {
    if (watched.has(video) || !video.dataset.participantId) return;
    watched.add(video);
    const onFrame = () => {
      window.remoteFrameAt[video.dataset.participantId] = Date.now();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  const observer = new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "attributes") {
        const figure = record.target;
        if (figure.dataset.reconnecting === "true") {
          window.reconnectingLabels.push(
            figure.querySelector(".badge-reconnecting")?.textContent ?? "");
        }
        continue;
      }
      for (const node of record.removedNodes) {
        if (node instanceof HTMLElement && node.matches("figure[data-tile='camera']")) {
          window.tileRemovals.push(node.querySelector("video")?.dataset.participantId ?? "?");
        }
      }
    }
    document.querySelectorAll("video[data-participant-id]").forEach(watch);
  });
  document.addEventListener("DOMContentLoaded", () => {
    observer.observe(document.body, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["data-reconnecting"],
    });
  });
})();
"""

INBOUND_TOTAL = """
async ([kind, field]) => {
  const pc = window.teleconsult.subscriberPc;
  if (!pc) return 0;
  let total = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === kind) total += s[field] ?? 0;
  });
  return total;
}
"""

SELECTED_PAIR = """
async (which) => {
  const pc = window.teleconsult[which];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  if (!pairId) return null;
  const pair = stats.get(pairId);
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    state: pair.state,
    local: local.address ?? local.ip,
    remote: remote.address ?? remote.ip,
    localType: local.candidateType,
    remoteType: remote.candidateType,
  };
}
"""

MEDIA_STOPPED = """
() => {
  const { publisherPc, subscriberPc } = window.teleconsult;
  // One camera track feeds two senders (the full camera and its low layer): count it once.
  const senders = publisherPc.getSenders();
  const tracks = [...new Set(senders.map((sender) => sender.track).filter(Boolean))];
  return {
    tracks: tracks.map((track) => `${track.kind}:${track.readyState}`),
    publisher: publisherPc.connectionState,
    subscriber: subscriberPc.connectionState,
  };
}
"""


async def schedule_visit(
    server: TeleconsultServer, coordinator: str, **body: Any
) -> dict[str, Any]:
    """Schedule a visit of Dr. Wang Fang with Li Hua over REST; the consult with join links.

    :param server: The running server.
    :param coordinator: A coordinator's bearer token.
    :param body: Fields replacing the default request body's.
    """
    payload: dict[str, Any] = {
        "kind": "visit",
        "hospital": HOSPITAL,
        "title": "Follow-up of hypertension",
        "scheduled_at": datetime.now(UTC).isoformat(),
        "host": {"sub": DOCTOR_SUB, "name": DOCTOR_NAME, "role": "doctor"},
        "participants": [{"sub": PATIENT_SUB, "name": PATIENT_NAME, "role": "patient"}],
    }
    payload.update(body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base_url}/api/consults",
            json=payload,
            headers={"Authorization": f"Bearer {coordinator}"},
        ) as response,
    ):
        assert response.status == 201, await response.text()
        return await through_portal(server, await response.json())


async def through_portal(server: TeleconsultServer, consult: dict[str, Any]) -> dict[str, Any]:
    """The scheduling answer as the hospital portal hands it out: a staff member's link (which
    carries no token) opened with their own identity token in the fragment.

    :param server: The running server (its ``teleconsult token`` stands in for the identity
        provider).
    :param consult: The REST answer to scheduling.
    """

    async def portal_link(invited: dict[str, Any]) -> dict[str, Any]:
        if "token=" in invited["join_url"]:
            return invited  # a patient's join link
        token = await asyncio.to_thread(
            server.token, invited["sub"], invited["role"], invited["hospital"], invited["name"]
        )
        return {**invited, "join_url": f"{invited['join_url']}#token={token}"}

    participants = await asyncio.gather(*(portal_link(p) for p in consult["participants"]))
    return {**consult, "participants": list(participants)}


async def read_consult(server: TeleconsultServer, bearer: str, consult_id: str) -> dict[str, Any]:
    """``GET /api/consults/{id}``.

    :param server: The running server.
    :param bearer: A token allowed to read the consult.
    :param consult_id: The consult.
    """
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.base_url}/api/consults/{consult_id}",
            headers={"Authorization": f"Bearer {bearer}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def participant(consult: dict[str, Any], sub: str) -> dict[str, Any]:
    """The participant of `consult` with subject `sub` (with its ``join_url``).

    :param consult: The REST answer to scheduling.
    :param sub: The participant's subject.
    """
    return next(p for p in consult["participants"] if p["sub"] == sub)


async def open_link(new_context: NewContext, url: str) -> Page:
    """Open a join link in a browser context of its own, probing for the first remote frame.

    :param new_context: The ``new_context`` fixture.
    :param url: The join link.
    """
    context = await new_context()
    await context.add_init_script(script=FIRST_REMOTE_FRAME_PROBE)
    page = await context.new_page()
    await page.goto(url)
    return page


async def join(page: Page) -> None:
    """Click "Join consult" once the device check has enabled it.

    :param page: A consult page in the join view.
    """
    await page.get_by_role("button", name="Join consult").click()


def remote_video(participant_id: str) -> str:
    """The selector of a participant's camera video in the grid.

    :param participant_id: Whose video.
    """
    return f'video[data-participant-id="{participant_id}"][data-source="camera"]'


def remote_tile(page: Page, participant_id: str) -> Locator:
    """The locator of a participant's camera tile on `page`.

    :param page: The page showing it.
    :param participant_id: Whose tile.
    """
    return page.locator(
        f'#video-grid figure[data-tile="camera"]:has({remote_video(participant_id)})'
    )


async def admit_from_lobby(doctor: Page, patient: Page, patient_name: str) -> float:
    """The doctor (already joined) admits the waiting patient; the time of the click.

    :param doctor: The host's page, in the consult view.
    :param patient: The patient's page, in the lobby.
    :param patient_name: The patient's display name, as the "Admit <name>" button says it.
    :returns: ``time.time()`` just before the click, to time the first frames from.
    """
    await expect(patient.locator("#lobby-status")).to_have_text(
        "Waiting for the doctor to admit you"
    )
    await expect(patient.locator("body")).to_have_attribute("data-view", "lobby")
    admit = doctor.get_by_role("button", name=f"Admit {patient_name}", exact=True)
    await expect(admit).to_be_visible()
    clicked_at = time.time()
    await admit.click()
    await expect(patient.locator("body")).to_have_attribute("data-view", "consult")
    await expect(doctor.get_by_text("Nobody is waiting.")).to_be_visible()
    return clicked_at


async def expect_playing(page: Page, participant_id: str) -> None:
    """Wait until `page` plays the participant's camera: a picture, time moving, 30 frames.

    Also checks that the tile's video element carries the participant's microphone.

    :param page: The receiving page.
    :param participant_id: Whose video.
    """
    selector = remote_video(participant_id)
    await page.wait_for_function(
        "(sel) => (document.querySelector(sel)?.videoWidth ?? 0) > 0",
        arg=selector,
        timeout=MEDIA_TIMEOUT_MS,
    )
    started = await page.eval_on_selector(selector, "(video) => video.currentTime")
    await page.wait_for_function(
        "([sel, start]) => document.querySelector(sel)?.currentTime > start",
        arg=[selector, started],
        timeout=MEDIA_TIMEOUT_MS,
    )
    await wait_inbound(page, "video", "framesDecoded", FRAMES_WANTED)
    audio_tracks = await page.eval_on_selector(
        selector, "(video) => video.srcObject?.getAudioTracks().length ?? 0"
    )
    assert audio_tracks == 1, "the camera tile does not play the participant's microphone"


async def inbound_total(page: Page, kind: str, field: str) -> int:
    """Sum of an ``inbound-rtp`` counter of the subscriber connection.

    :param page: A consult page.
    :param kind: ``audio`` or ``video``.
    :param field: e.g. ``framesDecoded``, ``packetsReceived``.
    """
    return int(await page.evaluate(INBOUND_TOTAL, [kind, field]))


async def wait_inbound(page: Page, kind: str, field: str, at_least: int) -> None:
    """Poll the subscriber's ``inbound-rtp`` counter until it reaches `at_least`.

    :param page: A consult page.
    :param kind: ``audio`` or ``video``.
    :param field: The counter.
    :param at_least: The value to reach.
    """
    deadline = time.monotonic() + MEDIA_TIMEOUT_MS / 1000
    value = 0
    while time.monotonic() < deadline:
        value = await inbound_total(page, kind, field)
        if value >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"inbound {kind} {field} stayed at {value}, wanted {at_least}")


async def expect_loopback_pairs(page: Page) -> None:
    """Both peer connections of `page` use a selected ICE pair on loopback at both ends.

    :param page: A consult page whose media flows.
    """
    for which in ("publisherPc", "subscriberPc"):
        pair = await page.evaluate(SELECTED_PAIR, which)
        assert pair is not None, f"{which}: no selected candidate pair"
        assert pair["state"] == "succeeded", f"{which}: {pair}"
        for end in ("local", "remote"):
            assert ipaddress.ip_address(pair[end]).is_loopback, f"{which} {end} end: {pair}"


async def first_remote_frame(page: Page) -> tuple[float, float]:
    """When the first remote frame could be shown: ms since page load, and epoch ms.

    :param page: A page opened by `open_link`, which already played a remote video.
    """
    values = await page.evaluate(
        "() => [window.firstRemoteFrameMs, window.firstRemoteFrameEpochMs]"
    )
    assert values[0] is not None, "the first remote frame was not seen"
    return float(values[0]), float(values[1])


async def print_first_frame_times(
    label: str, doctor: Page, patient: Page, admitted_at: float
) -> None:
    """Print page load → first remote frame for both pages, and admit → first frame.

    :param label: Which test measured it.
    :param doctor: The doctor's page.
    :param patient: The patient's page.
    :param admitted_at: ``time.time()`` of the admit click.
    """
    lines = []
    for who, page in (("patient", patient), ("doctor", doctor)):
        since_load, epoch = await first_remote_frame(page)
        since_admit = epoch - admitted_at * 1000
        lines.append(
            f"[{label}] {who}: page load → first remote video frame {since_load:.0f} ms "
            f"(admit click → first frame {since_admit:.0f} ms)"
        )
    print("\n" + "\n".join(lines))


async def visit_in_progress(
    new_context: NewContext, consult: dict[str, Any]
) -> tuple[Page, Page, float]:
    """Doctor joins, patient joins into the lobby, the doctor admits; both play the other.

    :param new_context: The ``new_context`` fixture.
    :param consult: The scheduled visit (REST answer with join links).
    :returns: The doctor's page, the patient's page and the time of the admit click.
    """
    doctor_of = participant(consult, DOCTOR_SUB)
    patient_of = participant(consult, PATIENT_SUB)
    doctor = await open_link(new_context, doctor_of["join_url"])
    await join(doctor)
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")
    await expect(doctor.get_by_text("Nobody is waiting.")).to_be_visible()

    patient = await open_link(new_context, patient_of["join_url"])
    await expect(patient.locator("#join-greeting")).to_have_text(f"Hello, {PATIENT_NAME}.")
    await join(patient)
    admitted_at = await admit_from_lobby(doctor, patient, PATIENT_NAME)

    await asyncio.gather(
        expect_playing(patient, doctor_of["participant_id"]),
        expect_playing(doctor, patient_of["participant_id"]),
    )
    return doctor, patient, admitted_at


async def first_frame_after(
    page: Page, participant_id: str, since_ms: float, timeout: float
) -> float:
    """Seconds from `since_ms` (epoch) to the first frame of `participant_id`'s camera after it
    (a page whose context runs RECONNECT_PROBE); fails after `timeout` seconds.

    :param page: The receiving page.
    :param participant_id: Whose camera.
    :param since_ms: Epoch milliseconds.
    :param timeout: Seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at = await page.evaluate("(id) => window.remoteFrameAt[id] ?? 0", participant_id)
        if at > since_ms:
            return float(at - since_ms) / 1000
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new frame of {participant_id} within {timeout} s")


# --- tests -----------------------------------------------------------------------------------
