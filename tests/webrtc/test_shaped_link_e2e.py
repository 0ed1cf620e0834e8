"""The shaped-link harness of issue 10, in a four-party conference in real Chromium.

The limited expert's browser runs in a network namespace of its own, and the other three pages
in one browser in another, each joined by a veth pair to a bridge in the test's namespace where
the server listens (tests/webrtc/own_network.py). The limited subscriber's downlink is shaped
with ``tc tbf`` and a random drop in nftables (this kernel has no netem). Every browser
publishes the same camera clip: a moving gradient under low-amplitude noise, 320x240 at 30 fps,
about 500 kbit/s (WEBRTC_TESTING.md: a solid colour fits any link and proves nothing).

- Unshaped, every page receives every other at 25 fps or more at full resolution (a camera's
  low layer once held its full layer at 15 fps, and the publishers' REMB starved them to 4).
- At 250 kbit/s with 3 % loss, the limited page's getStats receives about 250 kbit/s, and the
  nftables counters drop about 3 % of what reaches its link; lifted, nothing is dropped.

The issue's own tests on this conference (the limited page's layers at 250 kbit/s, audio only
at 60 kbit/s) are in git history (commit 1efbb6d): they do not pass yet.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.own_network import GATEWAY, OwnNetwork
from tests.webrtc.test_weak_link_e2e import inbound, rates
from tests.webrtc.visit_flow import schedule_visit

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(420)]

HOSPITAL = "h-east"
HOST = {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"}
EXPERTS = [
    {"sub": "ex-zhao", "name": "Prof. Zhao Lei", "role": "expert", "hospital": "h-north"},
    {"sub": "ex-sun", "name": "Dr. Sun Mei", "role": "expert"},
    {"sub": "ex-rural", "name": "Dr. Qian Yu", "role": "expert", "hospital": "h-west"},
]
#: The expert on the weak link.
LIMITED = EXPERTS[-1]["sub"]
WIDTH, HEIGHT, FPS = 320, 240, 30
VIEWPORT = {"width": 640, "height": 360}

# The figures: asserted as they are.
OTHERS_MIN_FPS = 25.0
WEAK_KBIT, WEAK_LOSS_PERCENT = 250, 3
#: How long an unshaped conference gets to reach full rate everywhere.
FULL_RATE_WITHIN_S = 20.0

#: Time the estimator and the layer selection get to settle on a new link, then the window the
#: frame rates are measured over.
SETTLE_S = 8.0
WINDOW_S = 6.0
#: How long the test waits for what must happen before it calls it hung: a guard, not a bound.
HANG_GUARD = 30.0
HANG_GUARD_MS = int(HANG_GUARD * 1000)

#: What reaches the page's subscriber connection: bytes on its transport, and RTP packets
#: received and lost over every inbound stream.
DOWNLINK = """
async () => {
  const pc = window.teleconsult.subscriberPc;
  let at = 0, bytes = 0, received = 0, lost = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "transport") { bytes += s.bytesReceived ?? 0; at = s.timestamp; }
    if (s.type === "inbound-rtp") {
      received += s.packetsReceived ?? 0; lost += s.packetsLost ?? 0;
    }
  });
  return { at, bytes, received, lost };
}
"""

#: What the page's camera sender does: frames a second, size, and what limits it.
SENDING = """
async () => {
  const out = [];
  (await window.teleconsult.publisherPc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") out.push({
      fps: s.framesPerSecond ?? 0, width: s.frameWidth ?? 0, rid: s.rid ?? null,
      kbit: s.targetBitrate ? Math.round(s.targetBitrate / 1000) : null,
      limited_by: s.qualityLimitationReason,
    });
  });
  return out;
}
"""

#: Each remote tile's link-quality badge and paused state, by participant id.
TILES = """
() => Object.fromEntries([...document.querySelectorAll("[data-participant-id]")]
  .filter((e) => e.tagName !== "VIDEO")
  .map((e) => [e.dataset.participantId, {
    quality: e.querySelector(".badge-quality")?.textContent ?? null,
    paused: e.dataset.videoPaused ?? null,
  }]))
"""


def write_clip(path: Path) -> Path:
    """A y4m clip the fake camera loops: a diagonal gradient moving 8 px a frame, ±12 luma noise.

    :param path: Where to write it.
    """
    noise = random.Random(10)
    # Gradient values 16..219 plus noise 0..24 stay within a byte: no clamping, a fast map.
    ramp = bytes(16 + (i % 204) for i in range(2 * (WIDTH + HEIGHT) + 8 * FPS))
    to_noise = bytes(i % 25 for i in range(256))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 2)
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in range(FPS):
            luma = b"".join(ramp[y + 8 * frame : y + 8 * frame + WIDTH] for y in range(HEIGHT))
            grain = noise.randbytes(WIDTH * HEIGHT).translate(to_noise)
            clip.write(b"FRAME\n" + bytes(map(int.__add__, luma, grain)) + chroma)
    return path


@dataclass
class Conference:
    """Four joined pages, each in a namespace of its own, and the limited one's network."""

    server: TeleconsultServer
    pages: dict[str, Page]
    ids: dict[str, str]
    network: OwnNetwork

    @property
    def weak(self) -> Page:
        return self.pages[LIMITED]

    @property
    def others(self) -> dict[str, Page]:
        return {sub: page for sub, page in self.pages.items() if sub != LIMITED}

    def name(self, participant_id: str) -> str:
        """The sub of a participant id."""
        return next((s for s, i in self.ids.items() if i == participant_id), participant_id)

    async def measure(
        self, pages: dict[str, Page], seconds: float
    ) -> dict[str, dict[str, tuple[float, int]]]:
        """Each page's frame rate and width per publisher (by sub) over `seconds`."""
        before = await asyncio.gather(*(inbound(page) for page in pages.values()))
        await asyncio.sleep(seconds)
        after = await asyncio.gather(*(inbound(page) for page in pages.values()))
        return {
            sub: {self.name(who): got for who, got in rates(b, a).items()}
            for sub, b, a in zip(pages, before, after, strict=True)
        }

    async def everyone_sees_everyone(self, within: float) -> None:
        """Wait until every page decodes video from every other (at any rate)."""
        deadline = time.monotonic() + within
        while True:
            figures = await self.measure(self.pages, 1.0)
            missing = [
                (sub, other)
                for sub in self.pages
                for other in self.pages
                if other != sub and figures[sub].get(other, (0.0, 0))[0] == 0
            ]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no video yet (receiver, publisher): {missing}\n{await self.state()}"
                )

    async def full_rate(self, receivers: dict[str, Page], within: float) -> float:
        """Seconds until every receiver gets every publisher at >= 25 fps and full width."""
        since = time.monotonic()
        while True:
            figures = await self.measure(receivers, 2.0)
            short = {
                sub: got
                for sub, got in figures.items()
                if len(got) < len(self.pages) - 1
                or any(fps < OTHERS_MIN_FPS or width != WIDTH for fps, width in got.values())
            }
            waited = time.monotonic() - since
            if not short:
                return waited
            if waited >= within:
                raise AssertionError(
                    f"after {waited:.0f} s not at full rate: {describe(short)}; "
                    f"{await self.state(receivers)}"
                )

    async def state(self, pages: dict[str, Page] | None = None) -> str:
        """What the pages were told they receive, what they send, their tiles, the server's
        link metrics: for failure messages and the findings."""
        out = []
        for sub, page in (pages or self.pages).items():
            mode = await page.evaluate("() => window.teleconsult.state.receiveMode")
            out.append(
                f"{sub}: receive_mode {mode}; sending {await page.evaluate(SENDING)}; "
                f"tiles { {self.name(k): v for k, v in (await page.evaluate(TILES)).items()} }"
            )
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.server.base_url}/metrics") as r,
        ):
            metrics = [
                line
                for line in (await r.text()).splitlines()
                if not line.startswith("#")
                and re.search(r"estimate|remb|layer|bitrate|link|paused|kbit", line, re.I)
            ]
        return "\n".join([*out, "metrics: " + "; ".join(metrics)])


def describe(figures: dict[str, dict[str, tuple[float, int]]]) -> str:
    """One line per receiving page: fps and width from each publisher."""
    return "; ".join(
        f"{sub} ← "
        + ", ".join(f"{who} {fps:.1f} fps {width}px" for who, (fps, width) in sorted(got.items()))
        for sub, got in figures.items()
    )


async def schedule_conference(server: TeleconsultServer) -> dict[str, Any]:
    """A conference of the host and three experts, with the portal's links."""
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    return await schedule_visit(
        server,
        coordinator,
        kind="conference",
        hospital=HOSPITAL,
        title="MDT: a rural colleague's case",
        host=HOST,
        participants=EXPERTS,
    )


async def enter(browser: Browser, url: str) -> Page:
    """Open a join link in a new context of `browser` and join the consult."""
    context = await browser.new_context(
        locale="en-US", permissions=["camera", "microphone"], viewport=VIEWPORT
    )
    page = await context.new_page()
    await page.goto(url, wait_until="domcontentloaded")
    await page.get_by_role("button", name="Join consult").click(timeout=HANG_GUARD_MS)
    await expect(page.locator("body")).to_have_attribute(
        "data-view", "consult", timeout=HANG_GUARD_MS
    )
    return page


@pytest.fixture
async def conference(
    own_network_browser: Callable[..., Awaitable[tuple[Browser, OwnNetwork]]],
    server_factory: Callable[..., Awaitable[TeleconsultServer]],
    tmp_path: Path,
) -> AsyncIterator[Conference]:
    """The four-party conference, every page receiving video from every other.

    Two browsers, each in a namespace of its own: the limited expert's, and one whose three
    contexts are the others' (one Chromium's GPU, audio and network processes instead of
    three, on a 2-core machine). The pages join one after the other.
    """
    started = time.monotonic()
    server = await server_factory(listen="0.0.0.0", TELECONSULT_MEDIA_ADDRESSES=GATEWAY)
    consult = await schedule_conference(server)
    origin = f"http://{GATEWAY}:{server.port}"
    camera = f"--use-file-for-fake-video-capture={write_clip(tmp_path / 'gradient.y4m')}"
    shared, _ = await own_network_browser(origin, camera)
    weak_browser, weak_network = await own_network_browser(origin, camera)
    pages: dict[str, Page] = {}
    for invited in consult["participants"]:
        browser = weak_browser if invited["sub"] == LIMITED else shared
        link = invited["join_url"].replace(server.base_url, origin)
        pages[invited["sub"]] = await enter(browser, link)
    ids = {p["sub"]: p["participant_id"] for p in consult["participants"]}
    meeting = Conference(server, pages, ids, weak_network)
    await meeting.everyone_sees_everyone(4 * HANG_GUARD)
    print(
        f"\n[no limit] everyone receives everyone {time.monotonic() - started:.1f} s after start; "
        f"then {describe(await meeting.measure(meeting.pages, WINDOW_S))}"
    )
    yield meeting
    meeting.network.unshape()


async def test_the_harness_shapes_the_limited_downlink(conference: Conference) -> None:
    """Unshaped, everyone at full rate; at 250 kbit/s with 3 % loss, the limited page receives
    about that and loses about that."""
    waited = await conference.full_rate(conference.pages, FULL_RATE_WITHIN_S)
    print(f"\n[no limit] every page at >= {OTHERS_MIN_FPS:.0f} fps, full width, in {waited:.1f} s")
    conference.network.shape_downlink(WEAK_KBIT, WEAK_LOSS_PERCENT)
    await asyncio.sleep(SETTLE_S)
    before, counted_before = (
        await conference.weak.evaluate(DOWNLINK),
        conference.network.loss_counted(),
    )
    await asyncio.sleep(WINDOW_S)
    after, counted_after = (
        await conference.weak.evaluate(DOWNLINK),
        conference.network.loss_counted(),
    )
    kbit = (after["bytes"] - before["bytes"]) * 8 / (after["at"] - before["at"])
    reached = counted_after[0] - counted_before[0]
    dropped = counted_after[1] - counted_before[1]
    packets = (after["received"] - before["received"]) + (after["lost"] - before["lost"])
    lost = (after["lost"] - before["lost"]) / max(packets, 1)
    print(
        f"\n[{WEAK_KBIT} kbit/s, {WEAK_LOSS_PERCENT} %] the limited page receives "
        f"{kbit:.0f} kbit/s; nftables dropped {dropped} of {reached} packets "
        f"({100 * dropped / max(reached, 1):.1f} %); "
        f"getStats lost {100 * lost:.1f} % of {packets} RTP packets"
    )
    # tbf lets a 16 kB burst through above the rate: at most ~20 kbit/s over a 6 s window.
    assert kbit <= WEAK_KBIT * 1.1, f"{kbit:.0f} kbit/s through a {WEAK_KBIT} kbit/s limit"
    assert reached >= 500, f"only {reached} packets reached the limited link in {WINDOW_S} s"
    assert 0.015 <= dropped / reached <= 0.05, f"random loss {dropped}/{reached}"
    assert lost >= 0.015, f"getStats saw {100 * lost:.1f} % lost"
    conference.network.unshape()
    assert conference.network.loss_counted() == (0, 0)
