"""An eight-party case conference: every participant receives every other's camera."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import pytest
from aiortc import RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from media import ConsultMedia
from media.aiortc_hooks import tap_encoded_frames, tap_rtp_packets

from .clients import ReceivedTrack, TestParticipant, wait_until

PARTICIPANTS = 8
FPS = 30
WIDTH, HEIGHT = 320, 240
#: How long a test waits for what must happen before it calls it hung (not a speed bound).
HANG_GUARD = 30.0


@pytest.fixture(scope="module")
def camera_loop() -> list[bytes]:
    """Two seconds of a moving picture, encoded once, a keyframe every second."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.bit_rate = 300_000
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.gop_size = FPS
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[bytes] = []
    for index in range(2 * FPS):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        luma = frame.planes[0]
        bar = (index * 8) % WIDTH
        row = bytes(235 if bar <= x < bar + 24 else (x * 3) & 0xFF for x in range(luma.line_size))
        luma.update(row * HEIGHT)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = index
        frame.time_base = encoder.time_base
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


class PreEncodedCamera(MediaStreamTrack):
    """A camera that sends pre-encoded VP8 frames in a loop: nothing is encoded live."""

    kind = "video"

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self._frames = frames
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._sent / FPS - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self._frames[self._sent % len(self._frames)])
        packet.pts = self._sent * (90000 // FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        self._sent += 1
        return packet


class FrameCounter:
    """Counts the complete frames of one received video track from its RTP packets."""

    def __init__(self) -> None:
        self.frames = 0
        self.first_at: float | None = None

    def on_packet(self, packet: RtpPacket, data: bytes) -> None:
        if packet.marker:
            if self.first_at is None:
                self.first_at = time.monotonic()
            self.frames += 1

    def cancel(self) -> None:
        """Nothing runs in the background."""


class ConferenceParticipant(TestParticipant):
    """A participant with a pre-encoded camera who counts what arrives without decoding."""

    __test__ = False

    def __init__(
        self, consult: ConsultMedia, participant_id: str, frames: list[bytes], decodes: bool
    ) -> None:
        super().__init__(consult, participant_id)
        self._frames = frames
        self._decodes = decodes

    async def publish(self, video_codec: str = "video/VP8") -> str:
        assert self.media is not None
        video = self.publisher.addTransceiver(PreEncodedCamera(self._frames), direction="sendonly")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == video_codec]
        )
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        answer = await self.media.handle_publisher_offer(self.publisher.localDescription.sdp)
        await self.publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return answer

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self.subscriber.getTransceivers() if t.receiver.track is track
        )
        if self._decodes:
            self.received[transceiver.mid] = ReceivedTrack(track)  # type: ignore[assignment]
            return
        counter = FrameCounter()
        tap_rtp_packets(transceiver.receiver, counter.on_packet, assemble=False)
        tap_encoded_frames(transceiver.receiver, lambda codec, frame: None, lambda: None)
        self.received[transceiver.mid] = counter  # type: ignore[assignment]


async def test_eight_party_conference_everyone_receives_everyone_elses_camera(
    consult: ConsultMedia,
    camera_loop: list[bytes],
) -> None:
    names = [f"expert-{n}" for n in range(PARTICIPANTS)]
    people = [
        ConferenceParticipant(consult, name, camera_loop, decodes=n == 0)
        for n, name in enumerate(names)
    ]
    try:
        for person in people:
            await person.join()
            await person.publish()

        def pairs() -> list[tuple[ConferenceParticipant, str]]:
            return [
                (viewer, other)
                for viewer in people
                for other in names
                if other != viewer.participant_id
            ]

        await wait_until(
            lambda: all(viewer.frames_from(other, "camera") >= 1 for viewer, other in pairs()),
            timeout=HANG_GUARD,
        )
        before = {(v.participant_id, o): v.frames_from(o, "camera") for v, o in pairs()}
        started = time.monotonic()

        def gained() -> dict[tuple[str, str], int]:
            return {
                (v.participant_id, o): v.frames_from(o, "camera") - before[(v.participant_id, o)]
                for v, o in pairs()
            }

        # Every stream keeps flowing: one more second of video on each of the 56, decoded ones
        # included. How fast is printed, not asserted (it is the machine's speed, see bench/).
        await wait_until(lambda: min(gained().values()) >= FPS, timeout=HANG_GUARD)
        elapsed = time.monotonic() - started
        counts = gained()
    finally:
        for person in people:
            await person.close()

    rates = sorted(count / elapsed for count in counts.values())
    print(
        f"\n{PARTICIPANTS} participants, {len(counts)} streams: "
        f"fps min {rates[0]:.1f}, median {rates[len(rates) // 2]:.1f}, max {rates[-1]:.1f}"
    )
    decoded = [count for (viewer, _), count in counts.items() if viewer == names[0]]
    assert len(decoded) == PARTICIPANTS - 1 and min(decoded) >= FPS
