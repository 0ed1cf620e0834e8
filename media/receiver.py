"""The receiving end of one published track: its RTP packets fanned out, never decoded."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from .codecs import codec_for

if TYPE_CHECKING:
    from .down_track import DownTrack

logger = logging.getLogger(__name__)

FrameSink = Callable[[RTCRtpCodecParameters, bytes, int, bool], None]
"""Receives each forwarded frame as ``(codec, data, timestamp, keyframe)``, on the event loop."""

KEYFRAME_REQUEST_INTERVAL = 0.5
"""Seconds between two keyframe requests to one publisher track, at most."""

NTP_EPOCH = 2208988800
"""Seconds from the NTP epoch (1900) to the Unix epoch."""


def current_ntp_time() -> int:
    """The time as a 64-bit NTP time: aiortc's ``clock.current_ntp_time``, without datetimes."""
    seconds, fraction = divmod(time.time(), 1.0)
    return (int(seconds) + NTP_EPOCH) << 32 | int(fraction * (1 << 32))


class KeyframeRequester:
    """
    Asks a publisher for a keyframe, at most once per interval however many ask.

    A request made too soon after the previous one is not dropped but deferred to the end
    of the interval, and serves every subscriber that asked meanwhile.

    :param send: Sends one request (a PLI); returns False when there was nobody to ask.
    :param interval: Minimum seconds between two requests.
    """

    def __init__(
        self,
        send: Callable[[], Awaitable[bool]],
        interval: float = KEYFRAME_REQUEST_INTERVAL,
    ) -> None:
        self._send = send
        self._interval = interval
        self._last = -interval
        self._deferred: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[bool] | None = None
        self.sent = 0

    def request(self) -> None:
        """Ask for a keyframe now, or at the end of the current interval."""
        if self._deferred is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval - loop.time()
        if wait <= 0:
            self._fire()
        else:
            self._deferred = loop.call_later(wait, self._fire)

    def close(self) -> None:
        """Cancel any deferred request."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def _fire(self) -> None:
        self._deferred = None
        self._last = asyncio.get_running_loop().time()
        self.sent += 1
        logger.debug("keyframe request %d", self.sent)
        self._task = asyncio.ensure_future(self._send())


class TrackReceiver:
    """
    Receives one published track and fans its RTP packets out to its down tracks.

    LiveKit calls it the track's receiver, mediasoup its producer. Packets go out as they
    arrive (no jitter buffer on the way), each down track rewriting only the header and
    the picture numbers; nothing is decoded or logged per packet. Sinks (recorders) get
    whole reassembled frames instead. A down track added later, or unmuted, waits for the
    next keyframe, which is requested at once.

    :param codec: The codec the publisher sends.
    :param keyframes: Asks the publisher for a keyframe.
    :raises UnsupportedCodec: when the codec has no strategy in :mod:`media.codecs`.
    """

    def __init__(self, codec: RTCRtpCodecParameters, keyframes: KeyframeRequester) -> None:
        strategy = codec_for(codec.mimeType)
        self.codec = codec
        self.kind = strategy.kind
        self.muted = False
        self._keyframes = keyframes
        self._is_keyframe = strategy.is_keyframe
        self._starts_keyframe = strategy.starts_keyframe
        self._picture_numbers = strategy.picture_numbers if strategy.numbers_pictures else None
        self._down_tracks: tuple[DownTrack, ...] = ()
        self._sinks: tuple[FrameSink, ...] = ()
        self._ended = False
        self.layer_bytes = [0] * 4  # a TID has two bits
        """Payload bytes received per temporal layer (unlayered video counts as 0), fed or not."""
        self.voice_at: float | None = None
        """When its audio last carried the RFC 6464 voice flag, while someone received it."""

    @property
    def down_tracks(self) -> tuple[DownTrack, ...]:
        """The down tracks currently fed."""
        return self._down_tracks

    def add(self, down_track: DownTrack) -> None:
        """
        Start feeding a down track, from the next keyframe.

        :param down_track: A :class:`DownTrack` that waits for a keyframe.
        """
        if down_track not in self._down_tracks:
            self._down_tracks = (*self._down_tracks, down_track)
        self.request_keyframe()

    def remove(self, down_track: DownTrack) -> None:
        """
        Stop feeding a down track.

        :param down_track: A down track previously added.
        """
        self._down_tracks = tuple(t for t in self._down_tracks if t is not down_track)

    @property
    def records(self) -> bool:
        """Whether a sink (a recorder) wants whole frames."""
        return bool(self._sinks)

    def add_sink(self, sink: FrameSink) -> None:
        """
        Also hand every forwarded frame to `sink` (a recorder), until :meth:`remove_sink`.

        The sink runs on the event loop for each frame and must return at once.

        :param sink: Called with ``(codec, data, timestamp, keyframe)``.
        """
        if sink not in self._sinks:
            self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: FrameSink) -> None:
        """
        Stop handing frames to `sink`.

        :param sink: A sink previously added; unknown sinks are ignored.
        """
        self._sinks = tuple(s for s in self._sinks if s is not sink)

    def set_muted(self, muted: bool) -> None:
        """
        Stop or resume forwarding; on resume every down track restarts at a keyframe.

        :param muted: True to stop forwarding.
        """
        if muted == self.muted:
            return
        self.muted = muted
        if not muted:
            for down_track in self._down_tracks:
                down_track.resync()
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (rate-limited)."""
        if not self._ended:
            self._keyframes.request()

    def on_packet(self, packet: RtpPacket, data: bytes) -> None:
        """
        Forward one RTP packet from the publisher, as it arrives, to every down track.

        :param packet: The packet (retransmissions arrive late under their own number).
        :param data: Its payload without the RTP payload descriptor.
        """
        down_tracks = self._down_tracks
        if self.muted or packet.payload_type != self.codec.payloadType:
            return
        parse = self._picture_numbers
        pictures = parse(packet.payload) if parse is not None else None
        # Counted even when no one is fed: a subscriber on another layer weighs this one.
        layer = pictures.temporal_id if pictures is not None else None
        self.layer_bytes[layer or 0] += len(packet.payload)
        if not down_tracks:
            return
        keyframe = self._starts_keyframe(packet.payload, data)
        now = time.monotonic()
        level = packet.extensions.audio_level
        if level is not None and level[0]:
            self.voice_at = now
        ntp_time = current_ntp_time()
        abs_send_time = ((ntp_time >> 14) & 0xFFFFFF).to_bytes(3, "big")
        for down_track in down_tracks:
            down_track.forward(packet, keyframe, pictures, now, ntp_time, abs_send_time)

    def on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """
        Hand one reassembled encoded frame from the publisher to the sinks.

        :param codec: The codec of the frame.
        :param frame: The encoded frame and its RTP timestamp.
        """
        if self.muted or not self._sinks or codec.mimeType != self.codec.mimeType:
            return
        data = frame.data
        keyframe = self._is_keyframe(data)
        for sink in self._sinks:
            sink(codec, data, frame.timestamp, keyframe)

    def end(self) -> None:
        """The published track is gone: detach every down track."""
        self._ended = True
        self._keyframes.close()
        for down_track in self._down_tracks:
            down_track.detach()
        self._down_tracks = ()
        self._sinks = ()
