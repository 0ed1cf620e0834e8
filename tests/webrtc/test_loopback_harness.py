"""Self-test of the WebRTC harness, without teleconsult's server: Chromium to aiortc on loopback.

If this fails, every other WebRTC test would fail for reasons of the machine, not of the product.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aioice.ice
import pytest
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from playwright.async_api import BrowserContext

from tests.conftest import free_tcp_port

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(60)]

FRAMES_WANTED = 10

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loopback harness</title></head>
<body>
<video id="local" autoplay muted playsinline></video>
<script>
window.harness = { state: "starting", error: null };

async function run() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  document.getElementById("local").srcObject = stream;
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  for (const track of stream.getVideoTracks()) pc.addTrack(track, stream);
  await pc.setLocalDescription(await pc.createOffer());
  // No trickle ICE: send the offer with every candidate in it.
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  const response = await fetch("/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) throw new Error("offer refused: HTTP " + response.status);
  await pc.setRemoteDescription(await response.json());
  window.harness.state = "negotiated";
}

run().catch((error) => {
  window.harness.state = "error";
  window.harness.error = String(error);
});

window.selectedPair = async function () {
  const stats = await window.pc.getStats();
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
    bytesSent: pair.bytesSent,
    local: local.address || local.ip,
    remote: remote.address || remote.ip,
    localType: local.candidateType,
    remoteType: remote.candidateType,
  };
};
</script>
</body></html>
"""


def drop_mdns_candidates(sdp: str) -> str:
    """Remove ``*.local`` candidates: resolving them would send multicast off loopback."""
    return "".join(
        line
        for line in sdp.splitlines(keepends=True)
        if not re.match(r"a=candidate:\S+ \d+ \S+ \d+ \S+\.local ", line)
    )


def candidate_addresses(sdp: str) -> list[str]:
    """The connection addresses of every ``a=candidate`` line."""
    return re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ", sdp, flags=re.MULTILINE)


@pytest.fixture
def loopback_host_candidates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make aiortc gather its host candidates on 127.0.0.1 (trap 2 of WEBRTC_TESTING.md)."""
    try:
        from media.aiortc_hooks import use_host_addresses
    except ImportError:
        monkeypatch.setattr(
            aioice.ice,
            "get_host_addresses",
            lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else [],
        )
        yield
        return
    use_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        use_host_addresses([])


class Answerer:
    """An aiortc peer behind ``POST /offer`` that counts the video frames it receives."""

    def __init__(self) -> None:
        self.peers: list[RTCPeerConnection] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.frames = 0
        self.enough_frames = asyncio.Event()
        self.answer_sdp = ""

    async def offer(self, request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peers.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                task = asyncio.create_task(self._count_frames(track))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        offer = RTCSessionDescription(sdp=drop_mdns_candidates(body["sdp"]), type=body["type"])
        await pc.setRemoteDescription(offer)
        await pc.setLocalDescription(await pc.createAnswer())
        self.answer_sdp = pc.localDescription.sdp
        return web.json_response({"sdp": self.answer_sdp, "type": pc.localDescription.type})

    async def _count_frames(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1
                if self.frames >= FRAMES_WANTED:
                    self.enough_frames.set()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in self.peers))


@pytest.fixture
async def answerer(loopback_host_candidates: None) -> AsyncIterator[tuple[Answerer, str]]:
    """The aiortc answerer and the harness page, served on 127.0.0.1: (answerer, page URL)."""
    peer = Answerer()
    app = web.Application()

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", index)
    app.router.add_post("/offer", peer.offer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield peer, f"http://127.0.0.1:{port}/"
    finally:
        await peer.close()
        await runner.cleanup()


async def test_chromium_sends_video_to_aiortc_over_loopback(
    answerer: tuple[Answerer, str],
    new_context: Callable[..., Awaitable[BrowserContext]],
) -> None:
    peer, url = answerer
    context = await new_context()
    page = await context.new_page()
    started = time.monotonic()
    await page.goto(url)

    deadline = started + 30
    while not peer.enough_frames.is_set():
        harness = await page.evaluate("window.harness")
        assert harness["state"] != "error", f"the page failed: {harness['error']}"
        assert time.monotonic() < deadline, f"aiortc got {peer.frames} frames in 30 s"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(peer.enough_frames.wait(), 0.2)
    first_frames = time.monotonic() - started

    assert candidate_addresses(peer.answer_sdp) == ["127.0.0.1"], peer.answer_sdp

    pair = None
    while pair is None or pair["state"] != "succeeded":
        assert time.monotonic() < deadline, f"no selected candidate pair in Chromium: {pair}"
        pair = await page.evaluate("window.selectedPair()")
        if pair is None or pair["state"] != "succeeded":
            await asyncio.sleep(0.1)
    assert ipaddress.ip_address(pair["local"]).is_loopback, pair
    assert ipaddress.ip_address(pair["remote"]).is_loopback, pair
    print(f"{peer.frames} frames at aiortc {first_frames:.2f}s after page load; pair {pair}")
