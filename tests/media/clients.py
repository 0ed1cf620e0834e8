"""Stand-ins for browsers in media tests: aiortc peers that publish and subscribe."""

from __future__ import annotations

import asyncio
import fractions
import os
import time
from typing import Any

import av
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from media import ConsultMedia, ParticipantMedia
from media.api import Source, SpatialLayer
from tests.log_scan import register_sdp

WIDTH, HEIGHT = 160, 120


class MovingBarTrack(VideoStreamTrack):
    """A synthetic camera: a bright bar sweeping across a grey picture."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, noise: bool = False) -> None:
        super().__init__()
        self._frame_index = 0
        self._size = width, height
        self._noise = noise

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        width, height = self._size
        bar = (self._frame_index * 4) % width
        self._frame_index += 1
        frame = av.VideoFrame(width, height, "yuv420p")
        luma, *chroma = frame.planes
        row = bytes(235 if bar <= x < bar + 16 else 128 for x in range(luma.line_size))
        # Noise costs the encoder all the bit rate it is allowed: a camera that weighs.
        luma.update(os.urandom(luma.buffer_size) if self._noise else row * height)
        for plane in chroma:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base)
        return frame


class ReceivedTrack:
    """Counts the decoded frames of one received track, noting when the first came and the
    size of the latest (aiortc decodes them with PyAV)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.first_at: float | None = None
        self.size: tuple[int, int] | None = None
        self._task = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.size = frame.width, frame.height
                if self.first_at is None:
                    self.first_at = time.monotonic()
                self.frames += 1
        except MediaStreamError:
            pass

    def cancel(self) -> None:
        self._task.cancel()


class TestParticipant:
    """
    A browser stand-in: joins a consult, publishes a camera and a microphone, and answers
    subscriber offers like the web client does.
    """

    __test__ = False

    def __init__(self, consult: ConsultMedia, participant_id: str) -> None:
        self.consult = consult
        self.participant_id = participant_id
        self.publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.subscriber.on("track", self._on_track)
        self.media: ParticipantMedia | None = None
        self.offers: list[dict[str, Any]] = []
        self.received: dict[str, ReceivedTrack] = {}
        self.answered = asyncio.Event()
        #: Every other event the server sent, in order (``receive_mode``, ``link_quality``).
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._joined = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self) -> None:
        self.media = await self.consult.join(self.participant_id, self._signal)
        self._joined.set()

    async def publish(
        self, video_codec: str = "video/VP8", low_layer: bool = False, noise: bool = False
    ) -> str:
        """
        Publish a camera and a microphone; return the server's answer SDP.

        :param low_layer: Also send the camera's low layer, at half its size, as the web
            client does at a quarter (a third media section, named ``low``).
        :param noise: Send noise: each video takes the encoder's whole bit rate.
        """
        assert self.media is not None
        codecs = [
            c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == video_codec
        ]
        video = self.publisher.addTransceiver(MovingBarTrack(noise=noise), direction="sendonly")
        video.setCodecPreferences(codecs)
        self.publisher.addTrack(AudioStreamTrack())
        sources: dict[str, Source] | None = None
        layers: dict[str, SpatialLayer] | None = None
        if low_layer:
            low = self.publisher.addTransceiver(
                MovingBarTrack(WIDTH // 2, HEIGHT // 2, noise), direction="sendonly"
            )
            low.setCodecPreferences(codecs)
            sources = {"0": "camera", "1": "microphone", "2": "camera"}
            layers = {"2": "low"}
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        offer = register_sdp(self.publisher.localDescription.sdp)
        answer = register_sdp(await self.media.handle_publisher_offer(offer, sources, layers))
        await self.publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return answer

    def tracks(self) -> dict[str, dict[str, str]]:
        """The ``tracks`` map of the latest subscriber offer."""
        return self.offers[-1]["tracks"] if self.offers else {}

    def frames_from(self, participant_id: str, source: str) -> int:
        """Frames received so far from one participant's source."""
        received = self.received_from(participant_id, source)
        return received.frames if received else 0

    def first_frame_from(self, participant_id: str, source: str) -> float | None:
        received = self.received_from(participant_id, source)
        return received.first_at if received else None

    def size_from(self, participant_id: str, source: str) -> tuple[int, int] | None:
        """The size of the latest frame received from one participant's source."""
        received = self.received_from(participant_id, source)
        return received.size if received else None

    def received_from(self, participant_id: str, source: str) -> ReceivedTrack | None:
        """What is received of one participant's source, if it is."""
        for mid, origin in self.tracks().items():
            if origin == {"participant_id": participant_id, "source": source}:
                return self.received.get(mid)
        return None

    async def close(self) -> None:
        for received in self.received.values():
            received.cancel()
        for task in self._tasks:
            task.cancel()
        await self.publisher.close()
        await self.subscriber.close()

    def last_event(self, name: str) -> dict[str, Any] | None:
        """The payload of the latest `name` event the server sent, if any."""
        return next((payload for event, payload in reversed(self.events) if event == name), None)

    async def send_remb(self, bitrate: int, fraction_lost: int = 0) -> None:
        """
        Report what a browser on a link of that capacity and loss would: a receiver report
        with `fraction_lost` (in 1/256) for every stream received, and a receiver estimated
        maximum bitrate for every video. The client's own estimator and receiver reports stop:
        loopback loses nothing, and their "no loss" would contradict the link described here.
        """
        for transceiver in self.subscriber.getTransceivers():
            receiver = transceiver.receiver
            ssrcs = [source.source for source in receiver.getSynchronizationSources()]
            # aiortc's private names: a test stand-in for a browser's congestion controller.
            rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
            if not ssrcs or rtcp_ssrc is None:
                continue
            receiver._RTCRtpReceiver__remote_bitrate_estimator = None
            receiver._RTCRtpReceiver__rtcp_task.cancel()  # running: packets came
            reports = [RtcpReceiverInfo(ssrc, fraction_lost, 0, 0, 0, 0, 0) for ssrc in ssrcs]
            await receiver._send_rtcp(RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports))
            if transceiver.kind == "video":
                await receiver._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(bitrate, ssrcs),
                    )
                )

    async def _signal(self, event: str, payload: dict[str, Any]) -> None:
        if event != "subscriber_offer":
            self.events.append((event, payload))
            return
        # Like a Socket.IO emit: deliver, and let the client answer on its own time.
        task = asyncio.ensure_future(self._answer(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, payload: dict[str, Any]) -> None:
        await self._joined.wait()
        assert self.media is not None
        self.offers.append(payload)
        offer = RTCSessionDescription(register_sdp(payload["sdp"]), "offer")
        await self.subscriber.setRemoteDescription(offer)
        await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
        await self.media.handle_subscriber_answer(
            register_sdp(self.subscriber.localDescription.sdp)
        )
        self.answered.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(
            t for t in self.subscriber.getTransceivers() if t.receiver.track is track
        )
        self.received[transceiver.mid] = ReceivedTrack(track)


#: How long a test waits for what must happen before it calls it hung: a guard, not a speed
#: bound (how fast things happen on this machine is measured by bench/, never asserted).
HANG_GUARD = 30.0


async def wait_until(condition: Any, timeout: float = HANG_GUARD, interval: float = 0.05) -> float:
    """Wait until `condition()` is true (at most `timeout` s); return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - start
