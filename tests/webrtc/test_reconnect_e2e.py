"""A visit survives the patient's network and a restart of the server (issue 9), in real Chromium.

The patient's browser runs in a network namespace of its own (tests/webrtc/own_network.py) whose
packets the test drops: all of them for 8 s, or only UDP. The doctor's page must show
"Reconnecting…" on the patient's tile and never a departure; video and audio come back both ways
without a reload; the timeline holds one reconnect; a recording running throughout is one
recording whose files play. A SIGTERM and restart of the server is survived the same way.

Each run prints the time from the network's (or the server's) return to the first new remote
frame on both pages: a figure for bench/README.md, never asserted (the house rule). With
``TELECONSULT_RECONNECT_TIMES=path`` it also appends the figure to that file (bench/reconnect.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.own_network import GATEWAY, OwnNetwork
from tests.webrtc.test_recording_e2e import start_recording_with_consent
from tests.webrtc.visit_flow import (
    DOCTOR_SUB,
    HOSPITAL,
    PATIENT_NAME,
    PATIENT_SUB,
    RECONNECT_PROBE,
    NewContext,
    admit_from_lobby,
    expect_playing,
    first_frame_after,
    inbound_total,
    join,
    open_link,
    participant,
    remote_tile,
    schedule_visit,
    visit_in_progress,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 8.0
#: Hang guard for media to come back (the issue's figure is 5 s: printed, not asserted).
RECOVERY_TIMEOUT_S = 60.0
#: The heartbeat notices a dead socket within ping interval + timeout (6 s), inside the outage;
#: a shorter timeout drops sockets whose answers a loaded machine merely delays.
FAST_HEARTBEAT = {
    "TELECONSULT_SOCKET_PING_INTERVAL_SECONDS": "2",
    "TELECONSULT_SOCKET_PING_TIMEOUT_SECONDS": "4",
}


def report(label: str, seconds: dict[str, float]) -> None:
    """Print the recovery figures, and append them for bench/reconnect.py when asked."""
    print(
        f"\n[{label}] return → first new remote frame: "
        + ", ".join(f"{who} {value:.2f} s" for who, value in seconds.items())
    )
    path = os.environ.get("TELECONSULT_RECONNECT_TIMES")
    if path:
        with Path(path).open("a") as handle:
            handle.write(json.dumps({"test": label, **seconds}) + "\n")


async def expect_audio_flowing(page: Page) -> None:
    """The page's current subscriber connection receives audio packets."""
    before = await inbound_total(page, "audio", "packetsReceived")
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if await inbound_total(page, "audio", "packetsReceived") >= before + 25:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no audio arrives")


async def timeline(server: TeleconsultServer, consult_id: str) -> list[dict[str, Any]]:
    doctor = await asyncio.to_thread(server.token, DOCTOR_SUB, "doctor", HOSPITAL)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.base_url}/api/consults/{consult_id}/timeline",
            headers={"Authorization": f"Bearer {doctor}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return list((await response.json())["events"])


async def patient_in_own_network(
    launch: Callable[[str], Awaitable[tuple[Browser, OwnNetwork]]],
    server: TeleconsultServer,
    join_url: str,
) -> tuple[Page, OwnNetwork, BrowserContext]:
    origin = f"http://{GATEWAY}:{server.port}"
    browser, network = await launch(origin)
    context = await browser.new_context(locale="en-US", permissions=["camera", "microphone"])
    await context.add_init_script(script=RECONNECT_PROBE)
    page = await context.new_page()
    await page.goto(join_url.replace(server.base_url, origin), wait_until="domcontentloaded")
    return page, network, context


async def probed_context(new_context: NewContext, **options: Any) -> BrowserContext:
    """A browser context whose pages run the reconnection probe."""
    context = await new_context(**options)
    await context.add_init_script(script=RECONNECT_PROBE)
    return context


async def visit_with_patient_apart(
    server: TeleconsultServer,
    new_context: NewContext,
    launch: Callable[[str], Awaitable[tuple[Browser, OwnNetwork]]],
) -> tuple[dict[str, Any], Page, Page, OwnNetwork]:
    """The doctor on loopback, the patient in a namespace of their own, both playing the other."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    doctor = await open_link(
        lambda **options: probed_context(new_context, **options),
        participant(consult, DOCTOR_SUB)["join_url"],
    )
    await join(doctor)
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")
    patient, network, _ = await patient_in_own_network(
        launch, server, participant(consult, PATIENT_SUB)["join_url"]
    )
    await expect(patient.locator("#join-greeting")).to_have_text(f"Hello, {PATIENT_NAME}.")
    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await asyncio.gather(
        expect_playing(patient, participant(consult, DOCTOR_SUB)["participant_id"]),
        expect_playing(doctor, participant(consult, PATIENT_SUB)["participant_id"]),
    )
    return consult, doctor, patient, network


async def recovery(
    label: str, doctor: Page, patient: Page, consult: dict[str, Any], since_ms: float
) -> None:
    """Video both ways again after `since_ms`, then audio both ways; the figures printed."""
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor_sees, patient_sees = await asyncio.gather(
        first_frame_after(doctor, patient_id, since_ms, RECOVERY_TIMEOUT_S),
        first_frame_after(patient, doctor_id, since_ms, RECOVERY_TIMEOUT_S),
    )
    await asyncio.gather(expect_audio_flowing(doctor), expect_audio_flowing(patient))
    report(label, {"doctor": doctor_sees, "patient": patient_sees})


async def test_patient_network_lost_for_8_seconds_the_visit_and_its_recording_go_on(
    own_network_browser: Callable[[str], Awaitable[tuple[Browser, OwnNetwork]]],
    server_factory: Callable[..., Awaitable[TeleconsultServer]],
    new_context: NewContext,
) -> None:
    server = await server_factory(
        listen="0.0.0.0",
        TELECONSULT_MEDIA_ADDRESSES=f"127.0.0.1,{GATEWAY}",
        **FAST_HEARTBEAT,
    )
    consult, doctor, patient, network = await visit_with_patient_apart(
        server, new_context, own_network_browser
    )
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    await start_recording_with_consent(doctor, patient)

    network.drop()
    await asyncio.sleep(OUTAGE_SECONDS)
    network.restore()
    restored_ms = time.time() * 1000

    await recovery("network loss", doctor, patient, consult, restored_ms)
    assert "Reconnecting…" in await doctor.evaluate("window.reconnectingLabels")
    await expect(remote_tile(doctor, patient_id)).to_have_attribute("data-reconnecting", "false")
    assert await doctor.evaluate("window.tileRemovals") == [], "the doctor saw a departure"
    assert await patient.evaluate("window.pageLoads") == 1, "the patient's page was reloaded"
    await expect(patient.locator("body")).to_have_attribute("data-view", "consult")

    await doctor.get_by_role("button", name="Stop recording", exact=True).click()
    await expect(doctor.locator("#recording-indicator")).to_be_hidden()
    events = await timeline(server, consult["id"])
    kinds = [event["kind"] for event in events]
    reconnects = [e["actor"]["name"] for e in events if e["kind"] == "reconnected"]
    assert reconnects == [PATIENT_NAME], reconnects
    assert "disconnected" not in kinds and "left" not in kinds, kinds
    assert kinds.count("recording_started") == 1, "one recording throughout"

    recordings = list((server.data_dir / "recordings").iterdir())
    assert len(recordings) == 1
    manifest = json.loads((recordings[0] / "manifest.json").read_text())
    assert manifest["status"] == "complete", manifest
    patient_tracks = [t for t in manifest["tracks"] if t["participant_id"] == patient_id]
    assert {t["source"] for t in patient_tracks} == {"camera", "microphone"}
    # A segment whose connection was replaced before its first keyframe is listed empty.
    playable = [t for t in manifest["tracks"] if t["frames"]]
    assert {(t["participant_id"], t["source"]) for t in playable} >= {
        (patient_id, "camera"),
        (patient_id, "microphone"),
    }
    for track in playable:
        with av.open(str(recordings[0] / track["name"])) as container:
            stream = container.streams[0]
            decoded = sum(len(packet.decode()) for packet in container.demux(stream))
        assert decoded > 0, f"{track['name']} does not play"


async def test_udp_blocked_while_the_socket_stays_media_comes_back(
    own_network_browser: Callable[[str], Awaitable[tuple[Browser, OwnNetwork]]],
    server_factory: Callable[..., Awaitable[TeleconsultServer]],
    new_context: NewContext,
) -> None:
    server = await server_factory(
        listen="0.0.0.0",
        TELECONSULT_MEDIA_ADDRESSES=f"127.0.0.1,{GATEWAY}",
        **FAST_HEARTBEAT,
    )
    consult, doctor, patient, network = await visit_with_patient_apart(
        server, new_context, own_network_browser
    )
    network.drop(udp_only=True)
    await asyncio.sleep(OUTAGE_SECONDS)
    network.restore()
    await recovery("UDP blocked", doctor, patient, consult, time.time() * 1000)
    assert await doctor.evaluate("window.tileRemovals") == []
    assert await doctor.evaluate("window.reconnectingLabels") == [], "the socket never dropped"
    kinds = [event["kind"] for event in await timeline(server, consult["id"])]
    assert "reconnected" not in kinds and "disconnected" not in kinds, kinds


async def test_server_restarted_with_sigterm_both_pages_resume_the_visit(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)

    doctor, patient, _ = await visit_in_progress(
        lambda **options: probed_context(new_context, **options), consult
    )
    await server.restart(crash=False)
    back_ms = time.time() * 1000

    await recovery("server restart", doctor, patient, consult, back_ms)
    for page in (doctor, patient):
        assert await page.evaluate("window.pageLoads") == 1, "a page was reloaded"
        await expect(page.locator("body")).to_have_attribute("data-view", "consult")
    kinds = [event["kind"] for event in await timeline(server, consult["id"])]
    assert kinds.count("reconnected") == 2, kinds
    assert "disconnected" not in kinds, kinds
    log = server.log_path.read_text()
    assert "going away" in log, "the server told its clients before stopping"
