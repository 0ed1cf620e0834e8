"""An 8-party case conference: 3 real Chromium pages and 5 synthetic aiortc experts.

Everyone receives everyone's video through the forwarding SFU; an expert joining late gets
usable video from every sender, starting at a keyframe requested for them (how soon is
printed here and measured by bench/join.py, never asserted); a screen share shows as its
own tile; the host mutes and then removes an expert, and every side sees it; the removed
expert's link no longer works. The frame rates everyone receives are printed, not asserted,
with the CPU each process used meanwhile.

The synthetic experts run in a process of their own (tests/webrtc/synthetic_experts.py),
send pre-encoded media and count what they receive at the RTP level, one of them decoding
it. Chromium's fake camera runs at 320x240 and 30 fps here: an init script adds those
constraints to the page's getUserMedia calls (test-side only, the product asks for the
default camera resolution), and each page's window is 640x360. The screen share is real
getDisplayMedia: with ``--use-fake-ui-for-media-stream`` and
``--use-fake-device-for-media-stream`` headless Chromium serves a fake 1280x720 screen
without a picker.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.webrtc.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TeleconsultServer,
    _save_pages,
    artifacts_dir,
    has_failed,
)
from tests.webrtc.synthetic_experts import Expert, ExpertReport, SyntheticExperts
from tests.webrtc.visit_flow import schedule_visit

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(240)]

HOSPITAL = "h-east"
HOST = {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"}
SHARER = {"sub": "ex-zhao", "name": "Prof. Zhao Lei", "role": "expert", "hospital": "h-north"}
MODERATED = {"sub": "ex-sun", "name": "Dr. Sun Mei", "role": "expert"}
SYNTHETIC = [
    {"sub": f"ex-{n}", "name": f"Expert {n}", "role": "expert", "hospital": hospital}
    for n, hospital in zip(
        range(1, 6), ["h-north", "h-west", "h-east", "h-south", "h-west"], strict=True
    )
]
#: Each page's window: Chromium composites the video tiles in software (no GPU here), at a
#: cost that grows with the area painted (at 1280x720 its GPU process took a third of a core).
VIEWPORT = {"width": 640, "height": 360}
#: The synthetic expert that decodes what it receives, and the one who joins late.
DECODER, LATE = SYNTHETIC[0]["sub"], SYNTHETIC[-1]["sub"]
FPS_WINDOW = 5.0
#: How long the test waits for what must happen before it calls it hung: a guard, not a bound.
HANG_GUARD = 30.0
HANG_GUARD_MS = int(HANG_GUARD * 1000)

SMALL_CAMERA = """
(() => {
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const open = devices.getUserMedia.bind(devices);
  devices.getUserMedia = (constraints) => {
    if (constraints && constraints.video) {
      const video = constraints.video === true ? {} : constraints.video;
      constraints = { ...constraints, video: { ...video, width: 320, height: 240, frameRate: 30 } };
    }
    return open(constraints);
  };
})();
"""

#: Per remote video element of the page: whom it shows, its size, and its inbound-rtp stats.
REMOTE_VIDEO = """
async () => {
  const pc = window.teleconsult.subscriberPc;
  if (!pc) return [];
  const stats = await pc.getStats();
  const inbound = new Map();
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") inbound.set(s.trackIdentifier, s);
  });
  const out = [];
  for (const video of document.querySelectorAll("video[data-participant-id]")) {
    for (const track of video.srcObject ? video.srcObject.getVideoTracks() : []) {
      const s = inbound.get(track.id) || {};
      out.push({
        participant: video.dataset.participantId,
        source: video.dataset.source,
        width: video.videoWidth,
        decoded: s.framesDecoded || 0,
        fps: s.framesPerSecond || 0,
        at: performance.now(),
      });
    }
  }
  return out;
}
"""


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Chromium as in conftest, with the fake camera at 30 fps instead of its default 20."""
    args = [
        "--use-fake-device-for-media-stream=fps=30"
        if arg == "--use-fake-device-for-media-stream"
        else arg
        for arg in CHROMIUM_ARGS
    ]
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=args
        )
        try:
            yield chromium
        finally:
            if has_failed(request.node):
                await _save_pages(chromium, artifacts_dir(request.node))
            await chromium.close()


async def schedule_conference(server: TeleconsultServer) -> dict[str, Any]:
    """A conference of the host and seven experts, scheduled by a coordinator over REST."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    return await schedule_visit(
        server,
        coordinator,
        kind="conference",
        hospital=HOSPITAL,
        title="MDT: suspected pancreatic mass",
        host=HOST,
        participants=[SHARER, MODERATED, *SYNTHETIC],
    )


def join_link(server: TeleconsultServer, consult: dict[str, Any], sub: str) -> str:
    """The participant's join link as the portal gave it, pointed at the test server."""
    url = urlsplit(next(p["join_url"] for p in consult["participants"] if p["sub"] == sub))
    return f"{server.base_url}{url.path}#{url.fragment}"


def ids(consult: dict[str, Any]) -> dict[str, str]:
    """Participant id by subject."""
    return {p["sub"]: p["participant_id"] for p in consult["participants"]}


async def open_page(new_context: Callable[..., Awaitable[BrowserContext]], link: str) -> Page:
    """A participant opens the link and joins the consult."""
    context = await new_context(viewport=VIEWPORT)
    await context.add_init_script(SMALL_CAMERA)
    page = await context.new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Join consult").click(timeout=HANG_GUARD_MS)
    await expect(page.locator("body")).to_have_attribute(
        "data-view", "consult", timeout=HANG_GUARD_MS
    )
    return page


async def videos(page: Page) -> dict[tuple[str, str], dict[str, Any]]:
    """The page's remote videos by (participant id, source)."""
    return {(v["participant"], v["source"]): v for v in await page.evaluate(REMOTE_VIDEO)}


async def wait_for(check: Callable[[], Awaitable[str | None]], timeout: float) -> None:
    """Poll ``check`` (None when satisfied, else what is missing) until it passes."""
    deadline = time.monotonic() + timeout
    while (missing := await check()) is not None:
        assert time.monotonic() < deadline, f"after {timeout} s: {missing}"
        await asyncio.sleep(0.2)


def everyone_received(
    pages: dict[str, Page], experts: SyntheticExperts, present: dict[str, str]
) -> Callable[[], Awaitable[str | None]]:
    """A check that every page decodes, and every present expert receives, all the others."""

    async def check() -> str | None:
        for sub, page in pages.items():
            seen = await videos(page)
            for other, pid in present.items():
                if other == sub:
                    continue
                v = seen.get((pid, "camera"))
                if not v or v["width"] == 0 or v["decoded"] == 0:
                    return f"{sub}'s page has no decoded video from {other}: {v}"
        for sub, report in (await experts.report()).items():
            if sub not in present:
                continue
            for other, pid in present.items():
                if other != sub and report.frames_from(pid) == 0:
                    got = report.received.get((pid, "camera"))
                    return f"{sub} received no video from {other} ({pid}): {got}"
        return None

    return check


def experts_told(
    experts: SyntheticExperts,
    event: str,
    participant_id: str,
    matches: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> Callable[[], Awaitable[str | None]]:
    """A check that every synthetic expert's latest `event` about a participant `matches`."""

    async def check() -> str | None:
        for sub, report in (await experts.report()).items():
            about = [e for e in report.events[event] if e["participant_id"] == participant_id]
            if not about or not matches(about[-1]):
                return f"{sub} was not told ({event}): {about}"
        return None

    return check


def muted(update: dict[str, Any]) -> bool:
    """A ``participant_updated`` payload saying the microphone is muted."""
    return update["muted"]["microphone"] is True


def cpu_seconds(*pids: int | None) -> dict[str, float]:
    """CPU seconds used so far by the server, the synthetic experts, this process and Chromium.

    :param pids: The server's and the experts' process ids, named ``server`` and ``experts``.
    """
    used: dict[str, float] = {}
    for name, pid in zip(("server", "experts"), pids, strict=True):
        used[name] = _process_cpu(pid) if pid else 0.0
    used["pytest"] = _process_cpu(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Chromium rewrites its children's titles: one string, arguments split by spaces.
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if not command or not command[0].endswith(b"/chromium"):
            continue
        kind = next(
            (a.split(b"=", 1)[1].decode() for a in command if a.startswith(b"--type=")), "browser"
        )
        if kind == "utility":
            kind = next(
                (
                    a.rsplit(b".", 1)[-1].decode()
                    for a in command
                    if a.startswith(b"--utility-sub-type=")
                ),
                kind,
            )
        key = f"chromium {kind}"
        if kind == "renderer":
            key += f" {entry.name}"
        used[key] = used.get(key, 0.0) + _process_cpu(int(entry.name))
    return used


def _process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """Each process's share of one core between two :func:`cpu_seconds` readings, and the total."""
    shares = {k: 100 * (v - before.get(k, 0.0)) / seconds for k, v in after.items()}
    load = Path("/proc/loadavg").read_text().split()[0]
    return (
        ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.5
        )
        + f"; total {sum(shares.values()):.0f} (load average {load})"
    )


def summary_of_losses(report: ExpertReport) -> str:
    """Packets recovered, frames given up on, PLIs sent and audio received by an expert."""
    got = report.received.values()
    return (
        f"{sum(r.missing_packets for r in got)} packets missing, "
        f"{sum(r.recovered_packets for r in got)} recovered, "
        f"{sum(r.lost_frames for r in got)} frames lost, "
        f"{sum(r.picture_losses for r in got)} PLIs sent, "
        f"{report.audio_packets} audio packets"
    )


def tile_of(page: Page, participant_id: str) -> Any:
    """The camera tile of a participant on a page."""
    return page.locator(
        f'figure[data-tile="camera"]:has(video[data-participant-id="{participant_id}"])'
    )


async def test_an_eight_party_conference_with_screen_share_mute_and_removal(
    server: TeleconsultServer,
    new_context: Callable[..., Awaitable[BrowserContext]],
) -> None:
    started = time.monotonic()
    consult = await schedule_conference(server)
    pid = ids(consult)
    name_of = {p["participant_id"]: p["sub"] for p in consult["participants"]}
    early = [p["sub"] for p in SYNTHETIC if p["sub"] != LATE]

    experts = await SyntheticExperts.start(
        server.base_url,
        [
            Expert(
                sub=person["sub"],
                token=join_link(server, consult, person["sub"]).split("token=", 1)[1],
                name=person["name"],
                decode=person["sub"] == DECODER,
            )
            for person in SYNTHETIC
        ],
    )
    try:
        browser_subs = [HOST["sub"], SHARER["sub"], MODERATED["sub"]]
        opened = await asyncio.gather(
            *(open_page(new_context, join_link(server, consult, sub)) for sub in browser_subs),
            experts.join(consult["id"], early),
        )
        pages = dict(zip(browser_subs, opened[:3], strict=True))
        host, sharer, moderated = (pages[sub] for sub in browser_subs)
        present = {sub: pid[sub] for sub in [*browser_subs, *early]}
        await wait_for(everyone_received(pages, experts, present), 2 * HANG_GUARD)
        print(f"\n7 participants exchanging video {time.monotonic() - started:.1f} s after start")

        # --- an expert joins mid-conference ---------------------------------------------------
        await experts.join(consult["id"], [LATE])
        present[LATE] = pid[LATE]

        async def late_has_all() -> str | None:
            late = (await experts.report())[LATE]
            missing = {
                s: late.received.get((p, "camera"))
                for s, p in present.items()
                if s != LATE and late.frames_from(p) == 0
            }
            return f"{LATE} has no video yet from {missing}" if missing else None

        # Usable frames start at a keyframe, and the Chromium senders make one only when asked:
        # video from each of them means a keyframe was requested for the late joiner.
        await wait_for(late_has_all, HANG_GUARD)
        late = (await experts.report())[LATE]
        delays = {s: late.first_frame_after_join(p) for s, p in present.items() if s != LATE}
        steps = sorted(late.milestones.items(), key=lambda kv: kv[1])
        print(
            "late joiner, seconds after starting to join: "
            + ", ".join(f"{step} {at - late.joined_at:.2f}" for step, at in steps)
            + "; first frame, per sender: "
            + ", ".join(f"{s} {d:.2f}" for s, d in sorted(delays.items()))
        )
        assert all(delay is not None and delay > 0 for delay in delays.values()), delays
        await wait_for(everyone_received(pages, experts, present), HANG_GUARD)

        # --- frame rates, printed ---------------------------------------------------------------
        cpu_before = cpu_seconds(server.pid, experts.pid)
        before = {sub: await videos(page) for sub, page in pages.items()}
        reports_before = await experts.report()
        window_started = time.monotonic()
        await asyncio.sleep(FPS_WINDOW)
        reports = await experts.report()
        window = time.monotonic() - window_started
        cpu = cpu_used(cpu_before, cpu_seconds(server.pid, experts.pid), window)
        page_rates: list[float] = []
        for sub, page in pages.items():
            after = await videos(page)
            rates = []
            for key, v in sorted(after.items()):
                if key[1] != "camera" or key not in before[sub]:
                    continue
                seconds = (v["at"] - before[sub][key]["at"]) / 1000
                rate = (v["decoded"] - before[sub][key]["decoded"]) / seconds
                page_rates.append(rate)
                rates.append(f"{name_of[key[0]]} {rate:.1f} ({v['fps']:.0f})")
            print(f"fps decoded by {sub}'s page (getStats framesPerSecond): " + ", ".join(rates))
        expert_rates: list[float] = []
        for sub, report in reports.items():
            rates = []
            for other in sorted(present):
                if other == sub:
                    continue
                gained = report.frames_from(pid[other]) - reports_before[sub].frames_from(
                    pid[other]
                )
                expert_rates.append(gained / window)
                rates.append(f"{other} {gained / window:.1f}")
            losses = summary_of_losses(report)
            print(
                f"fps received by {sub} ({'decoded' if report.decode else 'counted'}): "
                + ", ".join(rates)
                + f"; since joining: {losses}"
            )
        print(
            f"fps per track over {window:.1f} s: Chromium pages min {min(page_rates):.1f}, "
            f"median {statistics.median(page_rates):.1f}; synthetic experts min "
            f"{min(expert_rates):.1f}, median {statistics.median(expert_rates):.1f}"
        )
        print(f"CPU in that window, % of one core: {cpu}")

        decoder = reports[DECODER]
        for sub, participant_id in present.items():
            if sub != DECODER:
                got = decoder.received[(participant_id, "camera")]
                assert got.width and got.decode_errors == 0, (sub, got)

        # --- screen share ------------------------------------------------------------------------
        await sharer.get_by_role("button", name="Share screen", exact=True).click()
        await expect(sharer.get_by_role("button", name="Stop sharing", exact=True)).to_be_visible()
        for page in (host, moderated):
            screen = page.locator('figure[data-tile="screen"]')
            await expect(screen).to_have_count(1, timeout=HANG_GUARD_MS)
            await expect(screen.locator("figcaption")).to_contain_text(f"{SHARER['name']} (screen)")
            video = screen.locator(
                f'video[data-source="screen"][data-participant-id="{pid[SHARER["sub"]]}"]'
            )
            await expect(video).to_have_count(1)
            await wait_for(_video_plays(video), HANG_GUARD)
        await sharer.get_by_role("button", name="Stop sharing", exact=True).click()
        await expect(sharer.get_by_role("button", name="Share screen", exact=True)).to_be_visible()
        for page in (host, moderated):
            await expect(page.locator('figure[data-tile="screen"]')).to_have_count(
                0, timeout=HANG_GUARD_MS
            )

        # --- the host mutes an expert -----------------------------------------------------------
        moderated_id = pid[MODERATED["sub"]]
        mute = host.get_by_role("button", name=f"Mute {MODERATED['name']}", exact=True)
        await mute.click()
        for page in (host, sharer):
            await expect(tile_of(page, moderated_id)).to_have_attribute(
                "data-mic-muted", "true", timeout=HANG_GUARD_MS
            )
        await expect(mute).to_be_disabled()
        await expect(moderated.locator("#mute-button")).to_have_text("Unmute")
        await expect(moderated.locator("#announcer")).to_have_text(
            f"{HOST['name']} muted your microphone."
        )
        told = experts_told(experts, "participant_updated", moderated_id, muted)
        await wait_for(told, HANG_GUARD)

        # --- the host removes them --------------------------------------------------------------
        await host.get_by_role("button", name=f"Remove {MODERATED['name']}", exact=True).click()
        dialog = host.get_by_role("dialog", name=f"Remove {MODERATED['name']} from the consult?")
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name="Remove from consult", exact=True).click()
        await expect(moderated.locator("body")).to_have_attribute(
            "data-view", "ended", timeout=HANG_GUARD_MS
        )
        await expect(moderated.locator("#ended-heading")).to_have_text(
            f"You were removed from the consult by {HOST['name']}"
        )
        for page in (host, sharer):
            await expect(
                page.locator(f'video[data-participant-id="{moderated_id}"]')
            ).to_have_count(0, timeout=HANG_GUARD_MS)
        await wait_for(experts_told(experts, "participant_left", moderated_id), HANG_GUARD)

        await moderated.reload()
        await moderated.get_by_role("button", name="Join consult").click(timeout=HANG_GUARD_MS)
        await expect(
            moderated.locator('#alert[data-error-code="participant_removed"]')
        ).to_be_visible(timeout=HANG_GUARD_MS)
        print(f"whole conference test body: {time.monotonic() - started:.1f} s")
    finally:
        await experts.close()


def _video_plays(video: Any) -> Callable[[], Awaitable[str | None]]:
    """A check that a video element has a picture and its time advances."""
    last: list[float] = []

    async def check() -> str | None:
        state = await video.evaluate("v => [v.videoWidth, v.currentTime]")
        width, now = state
        advanced = bool(last) and now > last[0]
        last[:] = [now]
        return None if width > 0 and advanced else f"video width {width}, time {now}"

    return check
