"""A participant's client in Python: aiortc publisher and subscriber driven over Socket.IO."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)

from tests.integration.live import SignalingClient
from tests.log_scan import register_sdp


class MediaClient:
    """Publishes a synthetic camera and microphone, and counts what it receives, by source.

    :param signaling: a Socket.IO client that already joined (and was admitted to) a consult.
    """

    def __init__(self, signaling: SignalingClient) -> None:
        self.signaling = signaling
        self.publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.subscriber = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received: Counter[tuple[str, str]] = Counter()
        self._tracks: dict[str, dict[str, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.subscriber.on("track", self._on_track)

    async def publish(self, *, restart: bool = False) -> None:
        """Send camera and microphone to the server.

        :param restart: These connections replace lost ones (after a reconnect).
        """
        self.publisher.addTransceiver(VideoStreamTrack(), direction="sendonly")
        self.publisher.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await self.publisher.setLocalDescription(await self.publisher.createOffer())
        offer = {"type": "offer", "sdp": register_sdp(self.publisher.localDescription.sdp)}
        ack = await self.signaling.call("publish", {**offer, "restart": True} if restart else offer)
        assert ack["ok"], ack
        answer = RTCSessionDescription(register_sdp(ack["sdp"]), "answer")
        await self.publisher.setRemoteDescription(answer)
        self._tasks.append(asyncio.create_task(self._answer_offers()))

    async def subscribe(self) -> None:
        """Receive the others without publishing anything (``subscribe``)."""
        ack = await self.signaling.call("subscribe", {})
        assert ack == {"ok": True}, ack
        self._tasks.append(asyncio.create_task(self._answer_offers()))

    async def _answer_offers(self) -> None:
        while True:
            offer = await self.signaling.events["subscriber_offer"].get()
            self._tracks = offer["tracks"]
            offered = RTCSessionDescription(register_sdp(offer["sdp"]), "offer")
            await self.subscriber.setRemoteDescription(offered)
            await self.subscriber.setLocalDescription(await self.subscriber.createAnswer())
            answer = register_sdp(self.subscriber.localDescription.sdp)
            ack = await self.signaling.call("subscriber_answer", {"type": "answer", "sdp": answer})
            assert ack["ok"], ack

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next(
            (t.mid for t in self.subscriber.getTransceivers() if t.receiver.track is track), None
        )
        self._tasks.append(asyncio.create_task(self._count(mid, track)))

    async def _count(self, mid: str | None, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                origin = self._tracks.get(mid or "", {})
                self.received[(origin.get("participant_id", "?"), track.kind)] += 1

    async def wait_for(self, participant_id: str, kind: str, frames: int, timeout: float) -> int:
        """Wait until ``frames`` of ``kind`` arrived from a participant; the count."""
        async with asyncio.timeout(timeout):
            while self.received[(participant_id, kind)] < frames:  # noqa: ASYNC110 (a counter)
                await asyncio.sleep(0.05)
        return self.received[(participant_id, kind)]

    async def close(self) -> None:
        """Stop counting and close both connections."""
        for task in self._tasks:
            task.cancel()
        await self.publisher.close()
        await self.subscriber.close()
