"""The track a subscriber's sender reads: encoded packets from whichever source feeds it."""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .rewriter import TimestampRewriter

if TYPE_CHECKING:
    from .forwarder import TrackForwarder

QUEUE_FRAMES = {"audio": 50, "video": 60}
"""Frames a subscriber may fall behind (about one to two seconds) before frames are dropped."""


class ForwardedTrack(MediaStreamTrack):
    """
    A subscriber-side track whose :meth:`recv` returns encoded :class:`av.Packet` objects.

    aiortc's sender packetizes such packets without encoding them. The track outlives
    its sources: :meth:`attach` switches it to another published track, and its
    :class:`TimestampRewriter` keeps the RTP timeline continuous across the switch (the
    sender keeps SSRC, sequence numbers and VP8 picture IDs continuous itself).

    :param kind: ``audio`` or ``video``.
    :param clock_rate: The codec's RTP clock rate in Hz.
    :param capacity: Frames queued before a slow subscriber drops to the next keyframe.
    """

    def __init__(self, kind: str, clock_rate: int, capacity: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._time_base = fractions.Fraction(1, clock_rate)
        self._capacity = capacity or QUEUE_FRAMES[kind]
        self._queue: deque[tuple[int, bytes]] = deque()
        self._ready = asyncio.Event()
        self._rewriter = TimestampRewriter(clock_rate)
        self._source: TrackForwarder | None = None
        self._needs_keyframe = True
        self.dropped = 0

    @property
    def source(self) -> TrackForwarder | None:
        """The published track feeding this one, if any."""
        return self._source

    def attach(self, source: TrackForwarder) -> None:
        """
        Feed this track from `source`, starting at its next keyframe.

        :param source: The forwarder of a published track.
        """
        if source is self._source:
            return
        self.detach()
        self._source = source
        self.resync()
        source.add(self)

    def detach(self) -> None:
        """Stop feeding this track; the subscriber sees a pause."""
        if self._source is not None:
            self._source.remove(self)
            self._source = None
            self.resync()

    def resync(self) -> None:
        """Drop queued frames and wait for a keyframe, as after a pause."""
        self._queue.clear()
        self._needs_keyframe = True
        self._rewriter.restart()

    def request_keyframe(self) -> None:
        """The subscriber asked for a keyframe (PLI or FIR): ask the source."""
        if self._source is not None:
            self._source.request_keyframe()

    def push(self, data: bytes, timestamp: int, keyframe: bool, now: float) -> None:
        """
        Queue one encoded frame for the sender.

        :param data: The encoded frame.
        :param timestamp: Its RTP timestamp in the source's timeline.
        :param keyframe: Whether a decoder can start at this frame.
        :param now: Its arrival time in seconds (monotonic clock).
        """
        if self._needs_keyframe:
            if not keyframe:
                return
            self._needs_keyframe = False
        elif len(self._queue) >= self._capacity:
            # A slow subscriber: skip what it could not send, resume at a keyframe.
            self.dropped += len(self._queue)
            self._queue.clear()
            if not keyframe:
                self._needs_keyframe = True
                if self._source is not None:
                    self._source.request_keyframe()
                return
        self._queue.append((self._rewriter.rewrite(timestamp, now), data))
        self._ready.set()

    async def recv(self) -> av.Packet:
        """
        Return the next encoded frame as a packet with pts in the codec's clock.

        Waits while no source feeds the track.
        """
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        pts, data = self._queue.popleft()
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        return packet

    def stop(self) -> None:
        """End the track and wake a pending :meth:`recv`."""
        self.detach()
        super().stop()
        self._ready.set()
