"""
Benchmark: server CPU, loss and latency of our forwarding SFU against aiortc's MediaRelay.

Every party runs in its own process on loopback: the server (arm ``forward``: our
``media.MediaServer``; arm ``relay``: aiortc's ``MediaRelay``, which decodes once and encodes
for every subscriber), one publisher sending pre-encoded 640x480 30 fps VP8 (about 1 Mbit/s,
moving content, the frame's number drawn into the picture) plus Opus, and subscriber
processes that count packets and frames without decoding; the very first subscriber decodes,
to prove the stream is valid. A subscriber stream is one publisher's video and audio
reaching one subscriber. Server CPU is read from its CPU-time clock over each measured window.

Latency is publisher send -> first packet of the frame at the subscriber (loopback adds
well under a millisecond, so this is what the server adds). Frames are recognised by
their first bytes (forward arm, every subscriber) or by the number drawn into the decoded
picture (the decoding subscriber, both arms).

Arm ``layered`` (``--arms layered``, about a minute) runs in this process: CPU per forwarded
stream of the forwarding path alone (a publisher's VP8 packets through ``TrackReceiver`` to down
tracks, each SRTP-protected and sent to a UDP socket on loopback), for plain forwarding of an
unlayered stream against the same pictures encoded in L1T3 with layer selection on (all three
layers, and the two lower ones), interleaved in one run.

Arm ``receive`` (``--arms receive``, about two minutes): server CPU per received publisher with no
subscriber, aiortc's receive path against the packet inlet (:mod:`media.inlet`), alternating
fresh servers in one run, and their ratio. ``--receive-baseline REV`` also measures the inlet of
git revision REV (its ``media`` package under this script's server) in the same rounds.

The server process runs on uvloop, as ``teleconsult serve`` does (``--server-loop asyncio`` for
asyncio's own loop); the clients on asyncio's.

Run: ``.venv/bin/python bench/sfu.py`` (about 2-3 minutes). The last line printed is one
JSON object.
"""

# Load generators poll and write small result files outside every measured window:
# ruff: noqa: ASYNC110, ASYNC240

from __future__ import annotations

import argparse
import asyncio
import bisect
import fractions
import json
import logging
import math
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import uvloop
from aiohttp import ClientSession, web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import MediaConfig, MediaServer
from media.aiortc_hooks import (
    tap_encoded_frames,
    tap_rtp_packets,
    use_host_addresses,
)
from media.down_track import DownTrack
from media.receiver import KeyframeRequester, TrackReceiver

logger = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 640, 480, 30
LOOP_FRAMES = 90  # three seconds of video, looped
VIDEO_BITRATE = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FINGERPRINT = 48  # leading bytes of a VP8 frame that identify it within the loop
BARCODE_BITS, BARCODE_BLOCK, BARCODE_TOP = 8, 32, 16
SETTLE, WINDOW = 2.0, 5.0
DEFAULT_STEPS = {"forward": [1, 2, 4, 8, 16, 32, 48], "relay": [1, 2, 3]}
SUBSCRIBER_PROCESSES = 4


# --------------------------------------------------------------------------- media


def _barcode_origin(bit: int) -> tuple[int, int]:
    return 16 + bit * (BARCODE_BLOCK + 8), BARCODE_TOP


def _picture(index: int) -> bytes:
    """Luma of frame `index`: drifting blocks and a bar, with `index` drawn as a barcode."""
    rng = random.Random(7)
    blocks = [[rng.randrange(40, 216) for _ in range(WIDTH // 16 * 2)] for _ in range(HEIGHT // 16)]
    shift = index * 6
    rows = []
    for y in range(HEIGHT):
        block_row = blocks[y // 16]
        row = bytearray(
            block_row[((x + shift) // 16) % len(block_row)] ^ ((x + y) & 7) for x in range(WIDTH)
        )
        bar = (index * 12) % WIDTH
        row[bar : bar + 24] = b"\xeb" * len(row[bar : bar + 24])
        rows.append(row)
    for bit in range(BARCODE_BITS):
        x0, y0 = _barcode_origin(bit)
        value = 235 if index >> bit & 1 else 16
        for y in range(y0 - 4, y0 + BARCODE_BLOCK + 4):
            rows[y][x0 - 4 : x0 + BARCODE_BLOCK + 4] = b"\x80" * (BARCODE_BLOCK + 8)
        for y in range(y0, y0 + BARCODE_BLOCK):
            rows[y][x0 : x0 + BARCODE_BLOCK] = bytes([value]) * BARCODE_BLOCK
    return b"".join(rows)


def read_barcode(frame: av.VideoFrame) -> int:
    """Read the frame number drawn by :func:`_picture` from a decoded frame."""
    plane = frame.planes[0]
    data = bytes(plane)
    index = 0
    for bit in range(BARCODE_BITS):
        x0, y0 = _barcode_origin(bit)
        centre = data[(y0 + BARCODE_BLOCK // 2) * plane.line_size + x0 + BARCODE_BLOCK // 2]
        index |= (centre > 128) << bit
    return index


def pre_encode(path: Path) -> None:
    """Encode the looped video and audio once, so load generators only send packets."""
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.bit_rate = VIDEO_BITRATE
    video.framerate = fractions.Fraction(FPS)
    video.time_base = fractions.Fraction(1, FPS)
    video.gop_size = FPS
    video.options = {"deadline": "realtime", "cpu-used": "4", "lag-in-frames": "0"}
    frames: list[bytes] = []
    for index in range(LOOP_FRAMES):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(_picture(index))
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = index
        frame.time_base = video.time_base
        frames.extend(bytes(p) for p in video.encode(frame))
    frames.extend(bytes(p) for p in video.encode(None))
    assert len(frames) == LOOP_FRAMES, len(frames)

    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = 48000, "stereo", "s16"
    audio.bit_rate = 64000
    opus: list[bytes] = []
    for index in range(LOOP_FRAMES * 50 // FPS):
        samples = b"".join(
            struct.pack("<hh", value, value)
            for value in (
                int(6000 * math.sin(2 * math.pi * 440 * (index * 960 + n) / 48000))
                for n in range(960)
            )
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(samples)
        frame.sample_rate = 48000
        frame.pts = index * 960
        opus.extend(bytes(p) for p in audio.encode(frame))
    path.write_text(
        json.dumps({"video": [f.hex() for f in frames], "audio": [a.hex() for a in opus]})
    )
    bitrate = sum(map(len, frames)) * 8 / (LOOP_FRAMES / FPS)
    print(f"pre-encoded {len(frames)} VP8 frames ({bitrate / 1e6:.2f} Mbit/s), {len(opus)} Opus")


def load_media(path: Path) -> tuple[list[bytes], list[bytes]]:
    data = json.loads(path.read_text())
    return [bytes.fromhex(f) for f in data["video"]], [bytes.fromhex(a) for a in data["audio"]]


def fingerprints(frames: Sequence[bytes]) -> dict[bytes, int]:
    """Map each looped frame's leading bytes to its index; ambiguous ones are left out."""
    found: dict[bytes, int] = {}
    clashes = set()
    for index, frame in enumerate(frames):
        key = frame[:FINGERPRINT]
        if key in found:
            clashes.add(key)
        found[key] = index
    return {k: v for k, v in found.items() if k not in clashes}


class LoopedPackets(MediaStreamTrack):
    """A track returning pre-encoded packets at their real pace, logging when each left."""

    def __init__(self, kind: str, packets: list[bytes], rate: int, clock: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._period = 1 / rate
        self._time_base = fractions.Fraction(1, clock)
        self._step = step
        self._start: float | None = None
        self.sent: list[float] = []

    async def recv(self) -> av.Packet:
        count = len(self.sent)
        if self._start is None:
            self._start = time.time()
        wait = self._start + count * self._period - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self._packets[count % len(self._packets)])
        packet.pts = count * self._step
        packet.time_base = self._time_base
        self.sent.append(time.time())
        return packet


# --------------------------------------------------------------------------- server


class BenchServer:
    """The server process: one room, HTTP signaling, either arm."""

    def __init__(self, arm: str, packet_inlet: bool = True) -> None:
        self.arm = arm
        self.offers: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.media = MediaServer(
            MediaConfig(addresses=["127.0.0.1"], ice_servers=[], packet_inlet=packet_inlet)
        )
        self.room = self.media.room("bench")
        self.relay = MediaRelay()
        self.published: list[MediaStreamTrack] = []
        self.pcs: dict[str, RTCPeerConnection] = {}

    def queue(self, participant: str) -> asyncio.Queue[dict[str, Any]]:
        return self.offers.setdefault(participant, asyncio.Queue())

    async def publish(self, request: web.Request) -> web.Response:
        body = await request.json()
        participant = body["participant"]
        if self.arm == "forward":
            media = self.room.participants.get(participant) or await self.room.join(
                participant, self._sender(participant)
            )
            return web.json_response({"sdp": await media.handle_publisher_offer(body["sdp"])})
        pc = self.pcs[participant] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.on("track", self.published.append)
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def join(self, request: web.Request) -> web.Response:
        participant = (await request.json())["participant"]
        if self.arm == "forward":
            await self.room.join(participant, self._sender(participant))
            return web.json_response({})
        pc = self.pcs[participant] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for track in self.published:
            pc.addTrack(self.relay.subscribe(track))
        await pc.setLocalDescription(await pc.createOffer())
        await self.queue(participant).put({"sdp": pc.localDescription.sdp})
        return web.json_response({})

    async def offer(self, request: web.Request) -> web.Response:
        return web.json_response(await self.queue(request.query["participant"]).get())

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        participant = body["participant"]
        if self.arm == "forward":
            await self.room.participants[participant].handle_subscriber_answer(body["sdp"])
        else:
            await self.pcs[participant].setRemoteDescription(
                RTCSessionDescription(body["sdp"], "answer")
            )
        return web.json_response({})

    def _sender(self, participant: str) -> Any:
        async def send(event: str, payload: dict[str, Any]) -> None:
            await self.queue(participant).put(payload)

        return send


async def run_server(arm: str, packet_inlet: bool = True) -> None:
    server = BenchServer(arm, packet_inlet)
    app = web.Application()
    app.router.add_post("/publish", server.publish)
    app.router.add_post("/join", server.join)
    app.router.add_get("/offer", server.offer)
    app.router.add_post("/answer", server.answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    # Long-polled offer requests never finish on their own: leave without waiting for them.
    os._exit(0)


# --------------------------------------------------------------------------- clients


async def run_publisher(
    url: str, media: Path, out: Path | None = None, name: str = "publisher"
) -> None:
    """A publisher process: pre-encoded VP8 and Opus at their real pace until told to stop.

    :param out: where to write the send time of every video frame (latency), if wanted.
    :param name: the participant name the server publishes under.
    """
    use_host_addresses(["127.0.0.1"])
    video, audio = load_media(media)
    video_track = LoopedPackets("video", video, FPS, 90000, 90000 // FPS)
    audio_track = LoopedPackets("audio", audio, 50, 48000, 960)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(video_track, direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    )
    pc.addTransceiver(audio_track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with ClientSession() as http:
        response = await http.post(
            f"{url}/publish", json={"participant": name, "sdp": pc.localDescription.sdp}
        )
        answer = (await response.json())["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    while len(video_track.sent) < FPS:
        await asyncio.sleep(0.1)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if out is not None:
        out.write_text(json.dumps({"video": video_track.sent}))
    await pc.close()


class StreamCounter:
    """What one subscriber stream received: frames (first packet time, identity, complete)."""

    def __init__(self, known: dict[bytes, int]) -> None:
        self._known = known
        self._next_seq: int | None = None
        self._timestamp: int | None = None
        self._frame: list[Any] | None = None
        self.frames: list[list[Any]] = []
        self.first_packet: dict[int, float] = {}
        self.packets = 0
        self.lost_packets = 0
        self.audio_packets = 0

    def on_video(self, packet: RtpPacket, data: bytes) -> None:
        now = time.time()
        self.packets += 1
        seq = packet.sequence_number
        if self._next_seq is not None and seq != self._next_seq:
            gap = (seq - self._next_seq) & 0xFFFF
            if gap >= 0x8000:
                return  # late or repeated
            self.lost_packets += gap
            if self._frame is not None:
                self._frame[2] = False
        self._next_seq = (seq + 1) & 0xFFFF
        if packet.timestamp != self._timestamp:
            self._timestamp = packet.timestamp
            self.first_packet.setdefault(packet.timestamp, now)
            starts = packet.payload[:1] and packet.payload[0] & 0x1F == 0x10
            identity = self._known.get(data[:FINGERPRINT], -1) if starts else -1
            self._frame = [now, identity, bool(starts)]
        if packet.marker and self._frame is not None:
            self.frames.append(self._frame)
            self._frame = None

    def on_audio(self, packet: RtpPacket, data: bytes) -> None:
        self.audio_packets += 1


class Subscription:
    """One subscriber peer connection; the decoding one also reads the drawn frame numbers."""

    def __init__(self, url: str, participant: str, known: dict[bytes, int], decode: bool) -> None:
        self.url = url
        self.participant = participant
        self.decode = decode
        self.counter = StreamCounter(known)
        self.decoded: list[list[Any]] = []  # [first packet time, frame number]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.on("track", self._on_track)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, http: ClientSession) -> None:
        await http.post(f"{self.url}/join", json={"participant": self.participant})
        self._tasks.append(asyncio.ensure_future(self._answer_offers(http)))

    async def _answer_offers(self, http: ClientSession) -> None:
        while True:
            response = await http.get(f"{self.url}/offer", params={"participant": self.participant})
            offer = await response.json()
            await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await http.post(
                f"{self.url}/answer",
                json={"participant": self.participant, "sdp": self.pc.localDescription.sdp},
            )

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track).receiver
        if track.kind == "audio":
            tap_rtp_packets(receiver, self.counter.on_audio, assemble=False)
            tap_encoded_frames(receiver, lambda codec, frame: None, lambda: None)
        elif self.decode:
            tap_rtp_packets(receiver, self.counter.on_video)
            self._tasks.append(asyncio.ensure_future(self._read_pictures(track)))
        else:
            tap_rtp_packets(receiver, self.counter.on_video, assemble=False)
            tap_encoded_frames(receiver, lambda codec, frame: None, lambda: None)

    async def _read_pictures(self, track: MediaStreamTrack) -> None:
        origin: int | None = None
        try:
            while True:
                frame = await track.recv()
                if origin is None:
                    origin = min(self.counter.first_packet)
                first = self.counter.first_packet.get((origin + frame.pts) & 0xFFFFFFFF)
                if first is not None:
                    self.decoded.append([first, read_barcode(frame)])
        except MediaStreamError:
            pass

    def receiving(self) -> bool:
        return len(self.counter.frames) >= 3

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def run_subscribers(url: str, media: Path, out: Path, name: str, decode_first: bool) -> None:
    use_host_addresses(["127.0.0.1"])
    known = fingerprints(load_media(media)[0])
    subscriptions: list[Subscription] = []
    loop = asyncio.get_running_loop()
    async with ClientSession() as http:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "stop":
                break
            added = []
            for _ in range(int(line[1])):
                decode = decode_first and not subscriptions
                subscription = Subscription(url, f"{name}-{len(subscriptions)}", known, decode)
                subscriptions.append(subscription)
                added.append(subscription)
                await subscription.start(http)
            deadline = time.monotonic() + 20
            while not all(s.receiving() for s in added) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            print(f"ADDED {sum(s.receiving() for s in added)}", flush=True)
        result = [
            {
                "frames": s.counter.frames,
                "packets": s.counter.packets,
                "lost_packets": s.counter.lost_packets,
                "audio_packets": s.counter.audio_packets,
                "decoded": s.decoded if s.decode else None,
            }
            for s in subscriptions
        ]
        out.write_text(json.dumps(result))
        for subscription in subscriptions:
            await subscription.close()


# --------------------------------------------------------------------------- orchestration


class Child:
    """A process of this script, driven line by line over stdin/stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *args: str, script: str = __file__) -> Child:
        """Run ``script`` (this benchmark by default) with ``args`` as a child process."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def expect(self, word: str, timeout: float = 60) -> str:
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not raw:
                raise RuntimeError(f"child exited while waiting for {word}")
            line = raw.decode().strip()
            if line.startswith(word):
                return line[len(word) :].strip()

    async def stop(self) -> None:
        await self.say("stop")
        await asyncio.wait_for(self.process.wait(), 30)


def cpu_seconds(pid: int) -> float:
    """
    CPU time of process `pid` so far, all its threads, to the nanosecond: Linux's CPU-time
    clock of a process (what ``clock_getcpuclockid`` returns), where /proc counts 10 ms ticks
    (0.1 % of a core per publisher in a 5 s window of two). /proc's figure once it has exited.
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    except OSError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def slope(points: Sequence[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def match_sent(sent: list[float], index: int, at: float) -> float | None:
    """Send time of the newest frame number `index` (in the loop) sent before `at`."""
    newest = bisect.bisect_right(sent, at) - 1
    frame = newest - ((newest - index) % LOOP_FRAMES)
    return sent[frame] if frame >= 0 else None


async def run_arm(
    arm: str, steps: Sequence[int], media: Path, work: Path, loop: str = "uvloop"
) -> dict[str, Any]:
    server = await Child.start("server", "--arm", arm, "--server-loop", loop)
    url = f"http://127.0.0.1:{await server.expect('READY')}"
    publisher = await Child.start(
        "publisher", "--url", url, "--media", str(media), "--out", str(work / f"{arm}-pub.json")
    )
    await publisher.expect("READY")
    subscribers = [
        await Child.start(
            "subscribers",
            "--url",
            url,
            "--media",
            str(media),
            "--out",
            str(work / f"{arm}-sub{n}.json"),
            "--name",
            f"s{n}",
            *(["--decode-first"] if n == 0 else []),
        )
        for n in range(SUBSCRIBER_PROCESSES)
    ]
    pid = server.process.pid
    windows: list[dict[str, Any]] = []
    driven = [0] * SUBSCRIBER_PROCESSES
    for streams in [0, *steps]:
        adding = streams - sum(driven)
        for n in range(SUBSCRIBER_PROCESSES):
            share = adding // SUBSCRIBER_PROCESSES + (n < adding % SUBSCRIBER_PROCESSES)
            if share:
                await subscribers[n].say(f"add {share}")
        for n in range(SUBSCRIBER_PROCESSES):
            share = adding // SUBSCRIBER_PROCESSES + (n < adding % SUBSCRIBER_PROCESSES)
            if share:
                driven[n] += int(await subscribers[n].expect("ADDED"))
        await asyncio.sleep(SETTLE)
        cpu0, t0 = cpu_seconds(pid), time.time()
        await asyncio.sleep(WINDOW)
        cpu1, t1 = cpu_seconds(pid), time.time()
        cpu = (cpu1 - cpu0) / (t1 - t0) * 100
        windows.append({"streams": sum(driven), "cpu_pct": round(cpu, 2), "t0": t0, "t1": t1})
        print(f"  {arm}: {sum(driven):3d} streams: server {cpu:6.1f} % of a core", flush=True)
        if arm == "relay" and cpu > 150:
            break
    for child in subscribers:
        await child.stop()
    await publisher.stop()
    await server.stop()
    sent = json.loads((work / f"{arm}-pub.json").read_text())["video"]
    streams_seen: list[dict[str, Any]] = []
    for n in range(SUBSCRIBER_PROCESSES):
        streams_seen += json.loads((work / f"{arm}-sub{n}.json").read_text())
    return analyse(arm, windows, sent, streams_seen)


def analyse(
    arm: str, windows: list[dict[str, Any]], sent: list[float], streams: list[dict[str, Any]]
) -> dict[str, Any]:
    measured = [w for w in windows if w["streams"] > 0]
    baseline = windows[0]["cpu_pct"]
    marginal = slope([(w["streams"], w["cpu_pct"]) for w in windows])
    last = measured[-1]
    t0, t1 = last["t0"], last["t1"]
    fps, lost, expected, latencies = [], 0, 0, []
    sent_in_window = sum(t0 - 0.5 <= t < t1 - 0.5 for t in sent) / (t1 - t0)
    for stream in streams:
        frames = [f for f in stream["frames"] if t0 <= f[0] < t1]
        complete = [f for f in frames if f[2]]
        fps.append(len(complete) / (t1 - t0))
        numbers = set()
        for at, index, _ok in complete:
            if index >= 0:
                when = match_sent(sent, index, at)
                if when is not None:
                    latencies.append((at - when) * 1000)
                    numbers.add(bisect.bisect_left(sent, when))
        if arm == "forward" and numbers:
            expected += max(numbers) - min(numbers) + 1
            lost += max(numbers) - min(numbers) + 1 - len(numbers)
        else:
            expected += round(sent_in_window * (t1 - t0))
            lost += max(0, round((sent_in_window - len(complete) / (t1 - t0)) * (t1 - t0)))
    decoded = next(s["decoded"] for s in streams if s["decoded"] is not None)
    decoded_window = [d for d in decoded if t0 <= d[0] < t1]
    decoded_latency = [
        (at - when) * 1000
        for at, index in decoded_window
        if (when := match_sent(sent, index, at)) is not None
    ]
    if arm == "relay":
        latencies = decoded_latency
    return {
        "cpu_per_publisher_pct": round(baseline, 2),
        "windows": [{"streams": w["streams"], "cpu_pct": w["cpu_pct"]} for w in windows],
        "marginal_cpu_pct_per_stream": round(marginal, 3),
        "measured_streams": last["streams"],
        "publisher_fps": round(sent_in_window, 1),
        "fps_per_stream_min": round(min(fps), 1),
        "fps_per_stream_median": round(statistics.median(fps), 1),
        "loss_pct": round(100 * lost / expected, 2) if expected else None,
        "packet_loss_pct": round(
            100
            * sum(s["lost_packets"] for s in streams)
            / max(1, sum(s["packets"] + s["lost_packets"] for s in streams)),
            3,
        ),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p95": round(sorted(latencies)[int(len(latencies) * 0.95)], 1)
        if latencies
        else None,
        "decoded_fps": round(len(decoded_window) / (t1 - t0), 1),
        "decoded_latency_ms_p50": round(statistics.median(decoded_latency), 1)
        if decoded_latency
        else None,
    }


# --------------------------------------------------------------------------- receive arm

RECEIVE_ROUNDS = 4
RECEIVE_PATHS = ("aiortc", "inlet")
BASELINE = "baseline"


def baseline_script(revision: str, work: Path) -> Path:
    """
    This script inside a copy of `revision`'s tree: run from there, it serves that
    revision's ``media`` package.

    :param revision: A git revision of this repository.
    :param work: A directory the copy goes into.
    """
    root = Path(__file__).resolve().parent.parent
    tree = work / "baseline"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    script = tree / "bench" / "sfu.py"
    shutil.copyfile(__file__, script)
    return script


async def run_receive_arm(
    media: Path,
    publishers: int,
    baseline: Path | None = None,
    loop: str = "uvloop",
    rounds: int = RECEIVE_ROUNDS,
) -> dict[str, Any]:
    """
    Server CPU per received publisher (no subscriber): aiortc's receive path against the
    packet inlet (``MediaConfig.packet_inlet``), each round one fresh server per path.

    :param baseline: This script in an earlier revision's tree, whose inlet is measured too.
    :param loop: The servers' event loop.
    :param rounds: Windows per path (one fresh server each).
    """
    paths = [*RECEIVE_PATHS, *([BASELINE] if baseline is not None else [])]
    cpu: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path in paths:
            server = await Child.start(
                "server",
                "--arm",
                "forward",
                "--receive",
                "inlet" if path == BASELINE else path,
                "--server-loop",
                loop,
                script=str(baseline if path == BASELINE else __file__),
            )
            url = f"http://127.0.0.1:{await server.expect('READY')}"
            senders = []
            for n in range(publishers):
                sender = await Child.start(
                    "publisher", "--url", url, "--media", str(media), "--name", f"publisher-{n}"
                )
                await sender.expect("READY")
                senders.append(sender)
            await asyncio.sleep(SETTLE)
            pid = server.process.pid
            cpu0, t0 = cpu_seconds(pid), time.time()
            await asyncio.sleep(WINDOW)
            pct = (cpu_seconds(pid) - cpu0) / (time.time() - t0) * 100 / publishers
            cpu[path].append(pct)
            print(f"  receive ({path}): {pct:5.2f} % of a core per publisher", flush=True)
            for sender in senders:
                await sender.stop()
            await server.stop()
    median = {path: round(statistics.median(v), 2) for path, v in cpu.items()}
    result = {
        "publishers": publishers,
        "server_loop": loop,
        "cpu_pct_per_publisher": median,
        "windows": {path: [round(v, 2) for v in values] for path, values in cpu.items()},
        "ratio_inlet_vs_aiortc": round(median["inlet"] / median["aiortc"], 2),
    }
    if baseline is not None:
        result["ratio_inlet_vs_baseline"] = round(median["inlet"] / median[BASELINE], 2)
    return result


# --------------------------------------------------------------------------- layered arm

LAYERED_STREAMS = 16
LAYERED_ROUNDS = 9
LAYERED_LOOPS = 4  # times the 3 s loop is fed per variant and round


def encode_l1t3() -> list[bytes]:
    """The bench's pictures encoded as Chromium's L1T3: libvpx layering mode 3."""
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.bit_rate = VIDEO_BITRATE
    video.framerate = fractions.Fraction(FPS)
    video.time_base = fractions.Fraction(1, FPS)
    video.gop_size = FPS
    video.options = {
        "deadline": "realtime",
        "cpu-used": "4",
        "lag-in-frames": "0",
        "error-resilient": "default",
        "ts-parameters": "ts_layering_mode=3:ts_target_bitrate=500,750,1000",
    }
    frames: list[bytes] = []
    for index in range(LOOP_FRAMES):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(_picture(index))
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = index
        frame.time_base = video.time_base
        frames.extend(bytes(p) for p in video.encode(frame))
    frames.extend(bytes(p) for p in video.encode(None))
    return frames


def vp8_packets(frames: Sequence[bytes], layered: bool) -> list[RtpPacket]:
    """RTP packets of `frames` as a browser sends them, with TID/Y when `layered`."""
    packets, seq, tl0 = [], 1000, 0
    for index, frame in enumerate(frames):
        tid = (0, 2, 1, 2)[index % 4]
        tl0 = (tl0 + (tid == 0)) & 0xFF
        chunks = [frame[i : i + 1100] for i in range(0, len(frame), 1100)]
        for n, chunk in enumerate(chunks):
            picture = bytes([0x80 | index >> 8 & 0x7F, index & 0xFF])
            if layered:
                sync = 0x20 if index % 4 in (1, 2) else 0
                descriptor = bytes([0x90 if n == 0 else 0x80, 0xE0]) + picture
                descriptor += bytes([tl0, tid << 6 | sync])
            else:
                descriptor = bytes([0x90 if n == 0 else 0x80, 0x80]) + picture
            packet = RtpPacket(
                payload_type=97,
                sequence_number=seq & 0xFFFF,
                timestamp=index * 3000,
                payload=descriptor + chunk,
            )
            packet.marker = int(n == len(chunks) - 1)
            packets.append(packet)
            seq += 1
    return packets


class LoopbackOutlet:
    """Stands in for a subscriber's :class:`RtpOutlet`: SRTP-protects and sends to loopback."""

    payload_type, rtx_payload_type, ssrc, rtx_ssrc = 96, 97, 1234, 5678
    mid, mid_id, abs_send_time_id, audio_level_id = "0", 1, 3, None

    def __init__(self, sock: Any, address: tuple[str, int]) -> None:
        from pylibsrtp import Policy, Session

        policy = Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
        self._session = Session(policy)
        self._sock, self._address = sock, address
        self.sent = 0

    def send(self, packet: bytes, timestamp: int, ntp_time: int, payload_size: int) -> None:
        try:
            self._sock.sendto(self._session.protect(packet), self._address)
        except BlockingIOError:
            pass  # nobody reads the socket: the kernel drops, the cost is paid
        self.sent += 1

    def resend(self, packet: bytes) -> None:
        self.send(packet, 0, 0, 0)


async def run_layered_arm() -> dict[str, Any]:
    """CPU per forwarded stream: plain forwarding against layer selection, interleaved."""
    import socket

    from aiortc import RTCRtpCodecParameters

    frames = encode_l1t3()
    plain_packets, layered_packets = vp8_packets(frames, False), vp8_packets(frames, True)
    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)

    async def nothing() -> bool:
        return True

    variants = {"plain": (plain_packets, 2), "layers_0_1_2": (layered_packets, 2)}
    variants["layers_0_1"] = (layered_packets, 1)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    forwarded: dict[str, int] = {}
    for _ in range(LAYERED_ROUNDS):
        for name, (packets, layer) in variants.items():
            receiver = TrackReceiver(codec, KeyframeRequester(nothing, interval=3600))
            outlets = []
            for _ in range(LAYERED_STREAMS):
                track = DownTrack("video", 90000)
                outlet = LoopbackOutlet(sender, sink.getsockname())
                track.connect(outlet)  # type: ignore[arg-type]
                track.attach(receiver)
                track.temporal_layer = layer
                outlets.append(outlet)
            start = time.process_time()
            for loop in range(LAYERED_LOOPS):
                for packet in packets:
                    # The VP8 data after the descriptor (4 bytes, 6 with TL0PICIDX and TID).
                    receiver.on_packet(
                        packet, packet.payload[6 if packet.payload[1] & 0x40 else 4 :]
                    )
                if loop < LAYERED_LOOPS - 1:
                    packets = shifted(packets)
            cpu[name].append(time.process_time() - start)
            forwarded[name] = sum(o.sent for o in outlets) // LAYERED_STREAMS
            receiver.end()
    media_seconds = LAYERED_LOOPS * LOOP_FRAMES / FPS
    pct = {
        name: round(statistics.median(v) / (media_seconds * LAYERED_STREAMS) * 100, 3)
        for name, v in cpu.items()
    }
    least = {
        name: round(min(v) / (media_seconds * LAYERED_STREAMS) * 100, 3) for name, v in cpu.items()
    }
    spread = {
        name: round((max(v) - min(v)) / statistics.median(v) * 100, 1) for name, v in cpu.items()
    }
    return {
        "streams": LAYERED_STREAMS,
        "cpu_pct_per_stream": pct,
        "cpu_pct_per_stream_least": least,
        "spread_pct": spread,
        "packets_forwarded_per_stream": forwarded,
        "ratio_all_layers_vs_plain": round(pct["layers_0_1_2"] / pct["plain"], 2),
        "ratio_two_layers_vs_plain": round(pct["layers_0_1"] / pct["plain"], 2),
        "ratio_all_layers_vs_plain_least": round(least["layers_0_1_2"] / least["plain"], 2),
    }


def shifted(packets: list[RtpPacket]) -> list[RtpPacket]:
    """The loop's packets once more, later in sequence numbers, pictures and time."""
    out = []
    count = len(packets)
    for packet in packets:
        payload = bytearray(packet.payload)
        picture = ((payload[2] & 0x7F) << 8 | payload[3]) + LOOP_FRAMES
        payload[2], payload[3] = 0x80 | (picture >> 8) & 0x7F, picture & 0xFF
        if payload[1] & 0x40:
            payload[4] = (payload[4] + LOOP_FRAMES // 4) & 0xFF
        copy = RtpPacket(
            payload_type=packet.payload_type,
            sequence_number=(packet.sequence_number + count) & 0xFFFF,
            timestamp=(packet.timestamp + LOOP_FRAMES * 3000) & 0xFFFFFFFF,
            payload=bytes(payload),
        )
        copy.marker = packet.marker
        out.append(copy)
    return out


async def orchestrate(
    arms: Sequence[str],
    steps: dict[str, list[int]],
    receive_publishers: int = 1,
    receive_baseline: str | None = None,
    server_loop: str = "uvloop",
    receive_rounds: int = RECEIVE_ROUNDS,
) -> None:
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load)} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        media = work / "media.json"
        if set(arms) - {"layered"}:
            pre_encode(media)
        results = {}
        for arm in arms:
            if arm == "layered":
                results[arm] = await run_layered_arm()
            elif arm == "receive":
                baseline = (
                    baseline_script(receive_baseline, work)
                    if receive_baseline is not None
                    else None
                )
                results[arm] = await run_receive_arm(
                    media, receive_publishers, baseline, server_loop, receive_rounds
                )
            else:
                results[arm] = await run_arm(arm, steps[arm], media, work, server_loop)
    for arm, result in results.items():
        print(f"{arm}: {json.dumps(result)}")
    summary: dict[str, Any] = {}
    if "forward" in results:
        forward = results["forward"]
        summary = {
            "marginal_cpu_pct_per_stream": forward["marginal_cpu_pct_per_stream"],
            "capacity_streams_per_core": round(100 / forward["marginal_cpu_pct_per_stream"])
            if forward["marginal_cpu_pct_per_stream"] > 0
            else None,
            "measured_streams": forward["measured_streams"],
            "loss_pct": forward["loss_pct"],
            "packet_loss_pct": forward["packet_loss_pct"],
            "added_latency_ms_p50": forward["latency_ms_p50"],
            "added_latency_ms_p95": forward["latency_ms_p95"],
            "fps_per_stream_min": forward["fps_per_stream_min"],
            "cpu_per_publisher_pct": forward["cpu_per_publisher_pct"],
            "decoded_fps": forward["decoded_fps"],
        }
    if "relay" in results:
        relay = results["relay"]
        summary["mediarelay_marginal_cpu_pct_per_stream"] = relay["marginal_cpu_pct_per_stream"]
        summary["mediarelay_added_latency_ms_p50"] = relay["latency_ms_p50"]
        summary["mediarelay_fps_per_stream_min"] = relay["fps_per_stream_min"]
        if "forward" in results:
            summary["cpu_ratio_vs_mediarelay"] = round(
                relay["marginal_cpu_pct_per_stream"]
                / results["forward"]["marginal_cpu_pct_per_stream"],
                1,
            )
    if "layered" in results:
        layered = results["layered"]
        summary["layered_cpu_pct_per_stream"] = layered["cpu_pct_per_stream"]
        summary["layered_ratio_vs_plain"] = layered["ratio_all_layers_vs_plain"]
        summary["layered_two_layers_ratio_vs_plain"] = layered["ratio_two_layers_vs_plain"]
        summary["layered_ratio_vs_plain_least"] = layered["ratio_all_layers_vs_plain_least"]
    if "receive" in results:
        receive = results["receive"]
        summary["receive_cpu_pct_per_publisher"] = receive["cpu_pct_per_publisher"]
        summary["receive_ratio_inlet_vs_aiortc"] = receive["ratio_inlet_vs_aiortc"]
        if "ratio_inlet_vs_baseline" in receive:
            summary["receive_ratio_inlet_vs_baseline"] = receive["ratio_inlet_vs_baseline"]
    summary["load_average"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "role", nargs="?", default="bench", choices=["bench", "server", "publisher", "subscribers"]
    )
    parser.add_argument("--arm", choices=["forward", "relay"], default="forward")
    parser.add_argument(
        "--arms",
        default="forward,relay",
        help="arms to compare, in order (also: layered, receive)",
    )
    parser.add_argument(
        "--receive", choices=RECEIVE_PATHS, default="inlet", help="the server's receive path"
    )
    parser.add_argument("--receive-publishers", type=int, default=1)
    parser.add_argument("--receive-rounds", type=int, default=RECEIVE_ROUNDS)
    parser.add_argument(
        "--receive-baseline",
        metavar="REV",
        help="also measure the inlet of this git revision in the receive arm",
    )
    parser.add_argument(
        "--server-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the server's event loop (teleconsult serve runs on uvloop)",
    )
    parser.add_argument("--forward-steps", default=",".join(map(str, DEFAULT_STEPS["forward"])))
    parser.add_argument("--relay-steps", default=",".join(map(str, DEFAULT_STEPS["relay"])))
    parser.add_argument("--url")
    parser.add_argument("--media", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--name", default="publisher", help="a publisher's or subscribers' name")
    parser.add_argument("--decode-first", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.role == "server":
        run = uvloop.run if args.server_loop == "uvloop" else asyncio.run
        run(run_server(args.arm, args.receive == "inlet"))
    elif args.role == "publisher":
        asyncio.run(run_publisher(args.url, args.media, args.out, args.name))
    elif args.role == "subscribers":
        asyncio.run(run_subscribers(args.url, args.media, args.out, args.name, args.decode_first))
    else:
        steps = {
            "forward": [int(s) for s in args.forward_steps.split(",")],
            "relay": [int(s) for s in args.relay_steps.split(",")],
        }
        asyncio.run(
            orchestrate(
                args.arms.split(","),
                steps,
                args.receive_publishers,
                args.receive_baseline,
                args.server_loop,
                args.receive_rounds,
            )
        )


if __name__ == "__main__":
    main()
