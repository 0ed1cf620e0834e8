"""A visit on the patient's phone: real Chromium with a Pixel 7's screen and touch, through
`teleconsult serve`, the doctor on a desktop page.

The phone's browser requires a user activation before it plays sound
(``--autoplay-policy=document-user-activation-required``), as phone browsers do: where the page
has none when the doctor's media arrives, it offers "Enable sound", and one tap makes the
doctor heard. A denied camera costs only the camera (the patient joins with the microphone and
the doctor hears them); nothing allowed still lets the patient see and hear the doctor.
"Switch camera" and a camera taken away by the system change the track the doctor receives
without a renegotiation. In a one-to-one visit the doctor fills the phone's screen and the
patient's own picture is a small inset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.webrtc.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TeleconsultServer,
    _record_console,
    _save_pages,
    artifacts_dir,
    has_failed,
)
from tests.webrtc.visit_flow import (
    DOCTOR_SUB,
    HOSPITAL,
    MEDIA_TIMEOUT_MS,
    PATIENT_NAME,
    PATIENT_SUB,
    NewContext,
    admit_from_lobby,
    expect_playing,
    inbound_total,
    join,
    participant,
    remote_tile,
    remote_video,
    schedule_visit,
    wait_inbound,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(120)]

PHONE = "Pixel 7"
AUTOPLAY_ARG = "--autoplay-policy=document-user-activation-required"
FAKE_UI_ARG = "--use-fake-ui-for-media-stream"
FAKE_DEVICE_ARG = "--use-fake-device-for-media-stream"
NO_MDNS_ARG = "--disable-features=WebRtcHideLocalIpsWithMdns"
# Android's smallest comfortable touch target, and the WCAG 2.5.5 one: 44 CSS px.
MIN_TOUCH_PX = 44

# Runs before the page: note each vibration and each chime note the page makes.
PHONE_PROBE = """
(() => {
  window.vibrations = [];
  Object.defineProperty(Navigator.prototype, "vibrate", {
    configurable: true,
    value(pattern) { window.vibrations.push(pattern); return true; },
  });
  window.chimeNotes = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.chimeNotes += 1;
    return start.apply(this, args);
  };
})();
"""

# A page that joins by itself, without a tap (as after a reload): the browser then holds back
# sound. It says on the console when it offers "Enable sound", so that the test can wait for it
# without touching the page (Playwright's own calls into a page count as user activations).
JOIN_BY_ITSELF = """
(() => {
  const join = setInterval(() => {
    const button = document.getElementById("join-button");
    // window.teleconsult: the page's module runs (the button is in the HTML before it).
    if (window.teleconsult && button && !button.disabled) { clearInterval(join); button.click(); }
  }, 100);
  const watch = setInterval(() => {
    const sound = document.getElementById("sound-button");
    if (sound && !sound.hidden) { clearInterval(watch); console.info("sound offered"); }
  }, 100);
})();
"""
SOUND_OFFERED = "sound offered"

# A hospital proxy that lets no WebSocket through: every one is refused (sent to a closed port).
BLOCK_WEBSOCKET = """
(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    constructor(url, protocols) { super("ws://127.0.0.1:9/", protocols); }
  };
})();
"""

# The sound the page has played out from the subscriber connection (inbound-rtp, audio).
AUDIO_ENERGY = """
async () => {
  const pc = window.teleconsult.subscriberPc;
  let energy = 0;
  if (pc) (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") energy += s.totalAudioEnergy ?? 0;
  });
  return energy;
}
"""

# What the publisher sends as camera: its track, and the offer it was last negotiated with.
SENT_CAMERA = """
() => {
  const pc = window.teleconsult.publisherPc;
  const sender = pc.getSenders().find((s) => s.track?.kind === "video");
  return {
    id: sender?.track?.id ?? null,
    label: sender?.track?.label ?? null,
    state: sender?.track?.readyState ?? null,
    senders: pc.getSenders().length,
    offer: pc.localDescription?.sdp ?? null,
  };
}
"""

# The system takes the camera away (a phone call): the browser ends the track. A page cannot
# end its own track that way (stop() fires no `ended`), so the event is dispatched as the
# browser would.
END_CAMERA = """
() => {
  const sender = window.teleconsult.publisherPc.getSenders().find((s) => s.track?.kind === "video");
  sender.track.dispatchEvent(new Event("ended"));
}
"""

PhoneFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def phone(request: pytest.FixtureRequest) -> AsyncIterator[PhoneFactory]:
    """Opens a link on a phone: ``await phone(url, permissions=["microphone"], cameras=2)``
    (``scripts``: init scripts that run before the page's own; ``flags``: more Chromium flags).

    Each call launches Chromium (the flags of tests/webrtc/conftest.py, sound only after a user
    activation, `cameras` fake cameras) and opens `url` in a Pixel 7 context that grants only
    `permissions`; without both grants the fake permission prompt is left out, so what is not
    granted is denied. Pages are saved in ``test-artifacts/`` when the test fails.
    """
    async with async_playwright() as playwright:
        device = dict(playwright.devices[PHONE])
        device.pop("default_browser_type", None)
        browsers: list[Browser] = []

        async def open_page(
            url: str,
            *,
            permissions: Sequence[str] = ("camera", "microphone"),
            cameras: int = 1,
            scripts: Sequence[str] = (),
            flags: Sequence[str] = (),
        ) -> Page:
            args = [arg for arg in CHROMIUM_ARGS if arg not in (FAKE_UI_ARG, FAKE_DEVICE_ARG)]
            args += flags
            args.append(f"{FAKE_DEVICE_ARG}=device-count={cameras}")
            args.append(AUTOPLAY_ARG)
            if set(permissions) >= {"camera", "microphone"}:
                args.append(FAKE_UI_ARG)
            if not permissions:
                # Without a media permission Chromium hides its addresses behind mDNS names,
                # which the server ignores (on a real network STUN gives it one to use).
                args.append(NO_MDNS_ARG)
            chromium = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=args
            )
            browsers.append(chromium)
            # Phone browsers grant the screen wake lock to a visible page; headless asks for it.
            context = await chromium.new_context(
                **device, locale="en-US", permissions=[*permissions, "screen-wake-lock"]
            )
            context.on("page", _record_console)
            await context.add_init_script(script=PHONE_PROBE)
            for script in scripts:
                await context.add_init_script(script=script)
            page = await context.new_page()
            await page.goto(url)
            return page

        try:
            yield open_page
        finally:
            for chromium in browsers:
                if has_failed(request.node):
                    await _save_pages(chromium, artifacts_dir(request.node) / "phone")
                await chromium.close()


async def doctor_in_consult(new_context: NewContext, consult: dict[str, Any]) -> Page:
    """The doctor's desktop page, joined and waiting for the patient."""
    context = await new_context()
    doctor = await context.new_page()
    await doctor.goto(participant(consult, DOCTOR_SUB)["join_url"])
    await join(doctor)
    await expect(doctor.get_by_text("Nobody is waiting.")).to_be_visible()
    return doctor


async def audio_energy(page: Page) -> float:
    """The total audio energy the page's subscriber connection has played out."""
    return float(await page.evaluate(AUDIO_ENERGY))


async def wait_energy_above(page: Page, floor: float) -> float:
    """Poll until the played-out audio energy exceeds `floor`; the value reached."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_MS / 1000
    energy = 0.0
    while time.monotonic() < deadline:
        energy = await audio_energy(page)
        if energy > floor:
            return energy
        await asyncio.sleep(0.2)
    raise AssertionError(f"the audio energy stayed at {energy}, not above {floor}")


async def box(page: Page, selector: str) -> dict[str, float]:
    """The bounding box of the element `selector` (it must be laid out)."""
    found = await page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not laid out"
    return found


async def schedule(server: TeleconsultServer) -> dict[str, Any]:
    """A visit of Dr. Wang Fang with Li Hua."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    return await schedule_visit(server, coordinator)


async def test_the_doctor_fills_the_phone_after_the_lobby_chimes(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """Lobby preview, the admission chime and vibration, the screen kept on, the 1:1 layout
    and touch targets."""
    consult = await schedule(server)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    patient = await phone(participant(consult, PATIENT_SUB)["join_url"])

    await join(patient)
    await expect(patient.locator("body")).to_have_attribute("data-view", "lobby")
    await patient.wait_for_function(
        "() => document.getElementById('lobby-preview').videoWidth > 0",
        timeout=MEDIA_TIMEOUT_MS,
    )
    assert await patient.evaluate("() => [window.vibrations, window.chimeNotes]") == [[], 0]

    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await patient.wait_for_function("() => window.teleconsult.wakeLockHeld")
    assert await patient.evaluate("() => window.vibrations") == [[200, 100, 200]]
    assert await patient.evaluate("() => window.chimeNotes") == 2
    await expect_playing(patient, doctor_id)

    # One to one on a portrait phone: the doctor fills the width, shown whole; the patient's
    # own picture is a small inset over the doctor's tile.
    grid = patient.locator("#video-grid")
    await expect(grid).to_have_attribute("data-arrangement", "pip")
    viewport = patient.viewport_size
    assert viewport is not None and viewport["height"] > viewport["width"]
    large = await box(patient, f"#video-grid figure:has({remote_video(doctor_id)})")
    small = await box(patient, "#video-grid figure.tile-local")
    assert large["width"] >= 0.9 * (await box(patient, "#video-grid"))["width"]
    assert large["height"] > large["width"], large
    assert small["width"] * small["height"] < 0.15 * large["width"] * large["height"]
    assert large["x"] <= small["x"] and small["x"] + small["width"] <= large["x"] + large["width"]
    assert large["y"] <= small["y"] and small["y"] + small["height"] <= large["y"] + large["height"]
    doctor_video = patient.locator(remote_video(doctor_id))
    fit = await doctor_video.evaluate("(video) => getComputedStyle(video).objectFit")
    assert fit == "contain"

    # Every button of the consult can be hit with a finger.
    buttons = patient.locator("#view-consult button:visible")
    assert await buttons.count() >= 3
    for index in range(await buttons.count()):
        target = await buttons.nth(index).bounding_box()
        name = await buttons.nth(index).inner_text()
        assert target is not None and min(target["width"], target["height"]) >= MIN_TOUCH_PX, (
            name,
            target,
        )


async def test_receiving_only_with_sound_held_back_one_tap_makes_the_doctor_heard(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """Nothing allowed: receive only, said so; the held-back sound starts with one tap."""
    consult = await schedule(server)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    patient_of = participant(consult, PATIENT_SUB)
    patient = await phone(patient_of["join_url"], permissions=[], scripts=[JOIN_BY_ITSELF])

    # The page joins by itself; nothing touches it until it offers the sound.
    async with patient.expect_console_message(
        lambda message: message.text == SOUND_OFFERED, timeout=MEDIA_TIMEOUT_MS
    ):
        await doctor.get_by_role("button", name=f"Admit {PATIENT_NAME}", exact=True).click()

    # The doctor's picture plays, muted; the patient is told why they are not seen or heard.
    await expect_playing(patient, doctor_id)
    doctor_video = patient.locator(remote_video(doctor_id))
    assert await doctor_video.evaluate("(video) => video.muted") is True
    enable = patient.get_by_role("button", name="Enable sound", exact=True)
    await expect(enable).to_be_visible()
    notice = patient.locator("#media-notice")
    await expect(notice).to_have_attribute("data-mode", "receive_only")
    await expect(notice).to_have_attribute("data-problem", "media_denied")
    await expect(notice).to_contain_text("You join without camera and microphone")
    await expect(remote_tile(doctor, patient_id)).to_have_attribute("data-has-video", "false")
    assert await patient.evaluate("() => window.teleconsult.publisherPc") is None

    await enable.tap()
    await expect(enable).to_be_hidden()
    assert await doctor_video.evaluate("(video) => !video.muted && !video.paused") is True
    await wait_energy_above(patient, await audio_energy(patient))


async def test_a_denied_camera_joins_with_the_microphone_and_the_doctor_hears_it(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """Camera denied, microphone allowed: microphone only, said so, and heard by the doctor."""
    consult = await schedule(server)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    patient = await phone(participant(consult, PATIENT_SUB)["join_url"], permissions=["microphone"])

    notice = patient.locator("#media-notice")
    await expect(notice).to_have_attribute("data-mode", "microphone_only")
    await expect(notice).to_have_attribute("data-problem", "media_denied")
    await expect(notice).to_contain_text("You join with your microphone only")
    await expect(notice.get_by_role("button", name="Try again")).to_be_visible()

    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await expect_playing(patient, doctor_id)

    # The doctor hears the patient, and sees their initials instead of a picture.
    tile = remote_tile(doctor, patient_id)
    await expect(tile).to_have_attribute("data-has-video", "false")
    await wait_inbound(doctor, "audio", "packetsReceived", 50)
    await wait_energy_above(doctor, 0.0)
    kinds = await doctor.locator(f'#video-grid video[data-participant-id="{patient_id}"]').evaluate(
        "(video) => video.srcObject.getTracks().map((track) => track.kind)"
    )
    assert kinds == ["audio"]
    assert await inbound_total(doctor, "video", "packetsReceived") == 0

    # The camera allowed afterwards: "Try again" adds it to the call, and the doctor sees them.
    await patient.context.grant_permissions(["camera", "microphone"])
    await notice.get_by_role("button", name="Try again").tap()
    await expect(notice).to_be_hidden()
    await expect(tile).to_have_attribute("data-has-video", "true")
    await expect_playing(doctor, patient_id)


async def test_switching_camera_changes_what_the_doctor_receives_without_renegotiation(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """Switching the camera, then losing it to the system: new tracks on the same sender."""
    consult = await schedule(server)
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    patient = await phone(participant(consult, PATIENT_SUB)["join_url"], cameras=3)
    # Chromium's second fake camera gives depth (Y16) frames that its encoder never sends; the
    # first and the third give pictures. The patient picks the third, then switches.
    await patient.locator("#camera-select").select_option(label="fake_device_2")
    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await expect_playing(doctor, patient_id)
    received = doctor.locator(remote_video(patient_id))
    receiver_track = await received.evaluate("(video) => video.srcObject.getVideoTracks()[0].id")

    before = await patient.evaluate(SENT_CAMERA)
    await patient.get_by_role("button", name="Switch camera", exact=True).tap()
    await expect(patient.locator("#announcer")).to_have_text("Camera switched.")
    switched = await patient.evaluate(SENT_CAMERA)
    assert (before["label"], switched["label"]) == ("fake_device_2", "fake_device_0")
    assert switched["id"] != before["id"]
    assert switched["state"] == "live"
    # Same sender, same offer: the server and the doctor saw no renegotiation.
    assert (switched["senders"], switched["offer"]) == (before["senders"], before["offer"])
    frames = await inbound_total(doctor, "video", "framesDecoded")
    await wait_inbound(doctor, "video", "framesDecoded", frames + 30)

    await patient.evaluate(END_CAMERA)
    await patient.wait_for_function(
        "(id) => window.teleconsult.publisherPc.getSenders()"
        ".some((s) => s.track?.kind === 'video' && s.track.id !== id)",
        arg=switched["id"],
        timeout=MEDIA_TIMEOUT_MS,
    )
    reacquired = await patient.evaluate(SENT_CAMERA)
    assert reacquired["state"] == "live"
    assert (reacquired["senders"], reacquired["offer"]) == (before["senders"], before["offer"])
    frames = await inbound_total(doctor, "video", "framesDecoded")
    await wait_inbound(doctor, "video", "framesDecoded", frames + 30)
    assert await received.evaluate("(video) => video.srcObject.getVideoTracks()[0].id") == (
        receiver_track
    )


async def test_behind_a_proxy_that_blocks_websocket_the_visit_runs_over_long_polling(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """No WebSocket on the patient's network: Socket.IO falls back to HTTP long-polling."""
    consult = await schedule(server)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    patient_id = participant(consult, PATIENT_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    patient = await phone(participant(consult, PATIENT_SUB)["join_url"], scripts=[BLOCK_WEBSOCKET])
    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    transport = await patient.evaluate("() => window.teleconsult.socket.io.engine.transport.name")
    assert transport == "polling"
    await asyncio.gather(expect_playing(patient, doctor_id), expect_playing(doctor, patient_id))


async def test_a_link_opened_without_https_says_so_and_still_shows_the_doctor(
    server: TeleconsultServer, new_context: NewContext, phone: PhoneFactory
) -> None:
    """Not a secure context (plain http on a host name): no camera or microphone, and why."""
    consult = await schedule(server)
    doctor_id = participant(consult, DOCTOR_SUB)["participant_id"]
    doctor = await doctor_in_consult(new_context, consult)
    link = participant(consult, PATIENT_SUB)["join_url"].replace("127.0.0.1", "clinic.test")
    patient = await phone(
        link, permissions=[], flags=["--host-resolver-rules=MAP clinic.test 127.0.0.1"]
    )
    assert await patient.evaluate("() => window.isSecureContext") is False

    notice = patient.locator("#media-notice")
    await expect(notice).to_have_attribute("data-mode", "receive_only")
    await expect(notice).to_have_attribute("data-problem", "media_insecure")
    await expect(notice).to_contain_text("This page is not served securely (https)")
    # No retry can help: the link itself must change.
    await expect(notice.get_by_role("button", name="Try again")).to_be_hidden()

    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await expect_playing(patient, doctor_id)
