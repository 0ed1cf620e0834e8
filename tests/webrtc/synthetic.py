"""Synthetic conference participants that cost little: aiortc clients over Socket.IO.

They send media encoded once (VP8 320x240 at 30 fps with moving content, Opus with a tone
that comes and goes like speech) by looping :class:`av.Packet` objects, which aiortc's sender
packs without encoding; and they count the usable video frames they receive per participant
and source from the RTP packets (``media.aiortc_hooks.tap_rtp_packets``), decoding them only
when asked to.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media.aiortc_hooks import (
    on_keyframe_request,
    send_picture_loss,
    tap_encoded_frames,
    tap_rtp_packets,
)
from media.codecs import VP8
from tests.integration.live import SignalingClient, connect

logger = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 320, 240, 30
CLIP_FRAMES = 2 * FPS
KEYFRAME_INTERVAL = 15
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
AUDIO_RATE, AUDIO_SAMPLES = 48000, 960
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
CLIP_AUDIO_PACKETS = 100
#: How long a signaling call may take before the client calls the server hung (not a bound).
SIGNALING_HANG_GUARD = 30.0


@dataclass(frozen=True)
class EncodedClip:
    """Two seconds of encoded media to loop.

    :param video: VP8 frames; frame 0 and every ``KEYFRAME_INTERVAL``-th are keyframes.
    :param audio: Opus packets of 20 ms.
    """

    video: list[bytes]
    audio: list[bytes]


def _picture(index: int, rows: list[bytes]) -> av.VideoFrame:
    """A frame with a diagonal pattern drifting and a bright bar sweeping across.

    :param rows: The 200 phases of the pattern's row, see :func:`encode_clip`.
    """
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma, *chroma = frame.planes
    bar = (index * 8) % (WIDTH - 24)
    picture = bytearray()
    for y in range(HEIGHT):
        row = bytearray(rows[(5 * y + 6 * index) % 200])
        row[bar : bar + 24] = b"\xeb" * 24
        picture += row
    luma.update(bytes(picture))
    for plane in chroma:
        plane.update(bytes([(index * 4) % 256]) * plane.buffer_size)
    frame.pts = index
    return frame


def encode_clip() -> EncodedClip:
    """Encode the clip once with libvpx and libopus (about a tenth of a second)."""
    vp8 = av.CodecContext.create("libvpx", "w")
    vp8.width, vp8.height, vp8.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    vp8.time_base = fractions.Fraction(1, FPS)
    vp8.framerate = FPS
    vp8.bit_rate = 300_000
    vp8.gop_size = KEYFRAME_INTERVAL
    vp8.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    line_size = av.VideoFrame(WIDTH, HEIGHT, "yuv420p").planes[0].line_size
    rows = [bytes((3 * x + phase) % 200 + 16 for x in range(line_size)) for phase in range(200)]
    video = [bytes(p) for i in range(CLIP_FRAMES) for p in vp8.encode(_picture(i, rows))]
    video += [bytes(p) for p in vp8.encode(None)]

    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.layout, opus.format = AUDIO_RATE, "stereo", "s16"
    opus.bit_rate = 32_000
    audio: list[bytes] = []
    for i in range(CLIP_AUDIO_PACKETS):
        # Half a second of tone, half a second of silence: someone talking, then pausing.
        amplitude = 8000 if (i // 25) % 2 == 0 else 0
        samples = array.array(
            "h",
            (
                int(amplitude * math.sin(2 * math.pi * 440 * (k + i * AUDIO_SAMPLES) / AUDIO_RATE))
                for k in range(AUDIO_SAMPLES)
                for _channel in (0, 1)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate, frame.pts = AUDIO_RATE, i * AUDIO_SAMPLES
        audio += [bytes(p) for p in opus.encode(frame)]
    audio += [bytes(p) for p in opus.encode(None)]
    assert len(video) == CLIP_FRAMES, len(video)
    return EncodedClip(video=video, audio=audio[:CLIP_AUDIO_PACKETS])


class LoopedPacketTrack(MediaStreamTrack):
    """Plays encoded packets in a loop, in real time, with advancing timestamps.

    :param kind: ``video`` or ``audio``.
    :param packets: The encoded frames; the first must be a keyframe.
    :param interval: Seconds between two frames.
    :param ticks: Timestamp step per frame, in ``time_base`` units.
    :param time_base: The packets' time base (the codec's RTP clock).
    """

    def __init__(
        self,
        kind: str,
        packets: list[bytes],
        interval: float,
        ticks: int,
        time_base: fractions.Fraction,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._interval = interval
        self._ticks = ticks
        self._time_base = time_base
        self._index = 0
        self._sent = 0
        self._start: float | None = None

    def restart_at_keyframe(self) -> None:
        """A receiver asked for a keyframe: the loop's first frame is one."""
        self._index = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            await asyncio.sleep(max(0.0, self._start + self._sent * self._interval - now))
        packet = av.Packet(self._packets[self._index])
        packet.pts = self._sent * self._ticks
        packet.time_base = self._time_base
        self._index = (self._index + 1) % len(self._packets)
        self._sent += 1
        return packet


@dataclass
class Received:
    """What arrived from one participant's source.

    :param frames: Whole frames a decoder could use (complete, and their references too).
    :param first_at: ``time.monotonic()`` of the first such frame.
    :param width: Width of the last decoded frame (decoding clients only).
    :param missing_packets: Sequence numbers skipped and not (yet) recovered.
    :param recovered_packets: Packets that arrived after later ones (NACK and RTX at work).
    :param lost_frames: Frames given up on: a packet missing after NACK and retransmission.
    :param picture_losses: PLIs sent to get a keyframe after a loss.
    :param decode_errors: Frames the decoder refused (decoding clients only).
    """

    frames: int = 0
    first_at: float | None = None
    width: int | None = None
    missing_packets: int = 0
    recovered_packets: int = 0
    lost_frames: int = 0
    picture_losses: int = 0
    decode_errors: int = 0


@dataclass(slots=True)
class _Piece:
    """One buffered RTP packet of a video stream."""

    marker: bool
    starts: bool
    keyframe: bool
    data: bytes


class VideoFrameCounter:
    """Counts the usable frames of one received VP8 stream from its RTP packets.

    It does what a receiver's frame buffer does, cheaply: frames are reassembled in
    sequence order; a packet still missing ``LOSS_WAIT`` seconds after later ones arrived
    (aiortc's receiver has sent its NACK by then, and the retransmission had time to
    come) makes its frame lost, and every frame after it unusable until a keyframe, for
    which it sends a PLI (again every ``PICTURE_LOSS_INTERVAL`` while it waits). aiortc's
    own jitter buffer would instead hold everything until 512 packets have piled up.

    :param tally: Returns where to count, the :class:`Received` of the source the stream
        carries now (None: nobody yet).
    :param request_keyframe: Sends a PLI; called at most every ``PICTURE_LOSS_INTERVAL``.
    :param decode: Decode every usable frame with libvpx (proves the stream is valid).
    """

    LOSS_WAIT = 0.5
    PICTURE_LOSS_INTERVAL = 0.5

    def __init__(
        self,
        tally: Callable[[], Received | None],
        request_keyframe: Callable[[], None],
        decode: bool = False,
    ) -> None:
        self._tally = tally
        self._request_keyframe = request_keyframe
        self._decoder = av.CodecContext.create("vp8", "r") if decode else None
        self._buffer: dict[int, _Piece] = {}
        self._next: int | None = None
        self._highest: int | None = None
        self._resume_after: int | None = None
        self._usable = False
        self._hole_since: float | None = None
        self._asked_at = -math.inf

    def on_packet(self, packet: RtpPacket, data: bytes) -> None:
        """Take one packet (a retransmission arrives late, under its own number).

        :param packet: The RTP packet, its payload still holding the VP8 descriptor.
        :param data: The payload without the descriptor.
        """
        seq = packet.sequence_number
        got = self._tally()
        behind = False
        if self._highest is None:
            self._highest = seq
        elif (ahead := (seq - self._highest) & 0xFFFF) >= 0x8000:
            behind = True
        elif ahead > 0:
            if ahead > 1 and got is not None:
                got.missing_packets += ahead - 1
            self._highest = seq
        payload = packet.payload
        starts = len(payload) > 0 and payload[0] & 0x1F == 0x10
        if self._next is None:
            # Nothing assembled yet, or given up: wait for a frame to start after the hole.
            if not starts or (
                self._resume_after is not None and (seq - self._resume_after) & 0xFFFF >= 0x8000
            ):
                return
            self._next = seq
        elif (seq - self._next) & 0xFFFF >= 0x8000 or seq in self._buffer:
            return  # already assembled or given up on, or a duplicate
        if behind and got is not None:
            got.recovered_packets += 1
            got.missing_packets -= 1
        self._buffer[seq] = _Piece(packet.marker, starts, VP8.starts_keyframe(payload, data), data)
        self._assemble(time.monotonic())

    def _assemble(self, now: float) -> None:
        buffer = self._buffer
        while self._next is not None:
            seq, pieces = self._next, []
            while (piece := buffer.get(seq)) is not None:
                pieces.append(piece)
                if piece.marker:
                    break
                seq = (seq + 1) & 0xFFFF
            if pieces and pieces[-1].marker and pieces[0].starts:
                for n in range(len(pieces)):
                    del buffer[(self._next + n) & 0xFFFF]
                self._next = (seq + 1) & 0xFFFF
                self._hole_since = None
                self._frame(pieces, now)
                continue
            if len(buffer) <= len(pieces):
                return  # the frame is still arriving
            # A hole with later packets behind it: wait for the retransmission, then give up.
            if self._hole_since is None:
                self._hole_since = now
            if now - self._hole_since < self.LOSS_WAIT:
                return
            self._give_up(seq, now)

    def _give_up(self, missing: int, now: float) -> None:
        """Skip to the first frame that starts after the `missing` packet."""
        self._hole_since = None
        self._usable = False
        if (got := self._tally()) is not None:
            got.lost_frames += 1
        self._ask_for_keyframe(now)
        later = [s for s, p in self._buffer.items() if p.starts and (s - missing) & 0xFFFF < 0x8000]
        resume = min(later, key=lambda s: (s - missing) & 0xFFFF, default=None)
        if resume is None:
            self._buffer.clear()
            self._next, self._resume_after = None, missing
            return
        for s in [s for s in self._buffer if 0 < (resume - s) & 0xFFFF < 0x8000]:
            del self._buffer[s]
        self._next = resume

    def _frame(self, pieces: list[_Piece], now: float) -> None:
        if pieces[0].keyframe:
            self._usable = True
        if not self._usable:
            self._ask_for_keyframe(now)
            return
        got = self._tally()
        if self._decoder is not None:
            try:
                frames = self._decoder.decode(av.Packet(b"".join(p.data for p in pieces)))
            except av.FFmpegError:
                if got is not None:
                    got.decode_errors += 1
                self._usable = False
                self._ask_for_keyframe(now)
                return
            if frames and got is not None:
                got.width = frames[-1].width
        if got is not None:
            got.frames += 1
            if got.first_at is None:
                got.first_at = time.monotonic()

    def _ask_for_keyframe(self, now: float) -> None:
        if now - self._asked_at >= self.PICTURE_LOSS_INTERVAL:
            self._asked_at = now
            if (got := self._tally()) is not None:
                got.picture_losses += 1
            self._request_keyframe()


@dataclass
class SyntheticParticipant:
    """One conference participant: publishes the clip, counts what it receives.

    Video is counted at the RTP level (:class:`VideoFrameCounter`, fed by
    ``media.aiortc_hooks.tap_rtp_packets``): aiortc's jitter buffer and decoder thread
    never run. Audio packets are only counted.

    :param name: For messages.
    :param signaling: Its Socket.IO connection.
    :param clip: The media it sends.
    :param decode: Decode the received video (proves the forwarded streams are valid).
    """

    name: str
    signaling: SignalingClient
    clip: EncodedClip
    decode: bool = False
    participant_id: str = ""
    publisher: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    subscriber: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[]))
    )
    received: dict[tuple[str, str], Received] = field(default_factory=dict)
    audio_packets: int = 0
    joined_at: float = 0.0
    milestones: dict[str, float] = field(default_factory=dict)
    _tracks: dict[str, dict[str, str]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    async def connect(
        cls, url: str, token: str, name: str, clip: EncodedClip, decode: bool = False
    ) -> SyntheticParticipant:
        """Open its Socket.IO connection (not joined yet)."""
        return cls(name, await connect(url, token), clip, decode)

    async def join(self, consult_id: str) -> None:
        """Join the consult and publish camera and microphone.

        Notes ``joined_at`` and, in ``milestones``, when the join was acknowledged, the
        publication answered, and the first subscriber offer received and answered.
        """
        self.joined_at = time.monotonic()
        ack = await self.signaling.call(
            "join", {"consult_id": consult_id}, timeout=SIGNALING_HANG_GUARD
        )
        assert ack.get("ok") and ack["status"] == "joined", ack
        await self.enter(ack)

    async def enter(self, ack: dict[str, Any]) -> None:
        """Having joined (``ack``: the join's acknowledgement; a patient also admitted),
        receive the others and publish camera and microphone."""
        self._reached("joined")
        self.participant_id = ack["participant"]["participant_id"]
        self.subscriber.on("track", self._on_track)
        self._spawn(self._answer_offers())
        video = LoopedPacketTrack("video", self.clip.video, 1 / FPS, 3000, VIDEO_TIME_BASE)
        audio = LoopedPacketTrack(
            "audio", self.clip.audio, AUDIO_SAMPLES / AUDIO_RATE, AUDIO_SAMPLES, AUDIO_TIME_BASE
        )
        camera = self.publisher.addTransceiver(video, direction="sendonly")
        microphone = self.publisher.addTransceiver(audio, direction="sendonly")
        on_keyframe_request(camera.sender, video.restart_at_keyframe)
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        ack = await self.signaling.call(
            "publish",
            {
                "type": "offer",
                "sdp": self.publisher.localDescription.sdp,
                "sources": {camera.mid: "camera", microphone.mid: "microphone"},
            },
            timeout=SIGNALING_HANG_GUARD,
        )
        assert ack.get("ok"), ack
        await self.publisher.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        self._reached("published")

    def events(self, name: str) -> Iterator[Any]:
        """Drain the payloads of a server event received so far."""
        queue = self.signaling.events[name]
        while not queue.empty():
            yield queue.get_nowait()

    async def close(self) -> None:
        """Stop, close both connections and disconnect."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.publisher.close()
        await self.subscriber.close()
        if self.signaling.client.connected:
            await self.signaling.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_offers(self) -> None:
        while True:
            offer = await self.signaling.events["subscriber_offer"].get()
            self._reached("offered")
            self._tracks = offer["tracks"]
            await self.subscriber.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
            ack = await self.signaling.call(
                "subscriber_answer",
                {"type": "answer", "sdp": self.subscriber.localDescription.sdp},
                timeout=SIGNALING_HANG_GUARD,
            )
            assert ack.get("ok"), ack
            self._reached("answered")

    def _reached(self, milestone: str) -> None:
        self.milestones.setdefault(milestone, time.monotonic())

    def _received(self, mid: str) -> Received | None:
        """What arrived so far from the participant's source the `mid` carries now."""
        origin = self._tracks.get(mid)
        if origin is None:
            return None
        return self.received.setdefault((origin["participant_id"], origin["source"]), Received())

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self.subscriber.getTransceivers() if t.receiver.track is track
        )
        receiver, mid = transceiver.receiver, transceiver.mid
        # Never start aiortc's decoder thread: nothing reaches its jitter buffer anyway.
        tap_encoded_frames(receiver, lambda *_: None, lambda: None)
        if track.kind != "video":
            tap_rtp_packets(receiver, self._count_audio, assemble=False)
            return

        counter = VideoFrameCounter(
            lambda: self._received(mid),
            lambda: self._spawn(send_picture_loss(receiver)),
            decode=self.decode,
        )
        tap_rtp_packets(receiver, counter.on_packet, assemble=False)

    def _count_audio(self, _packet: RtpPacket, _data: bytes) -> None:
        self.audio_packets += 1
