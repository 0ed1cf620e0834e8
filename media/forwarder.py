"""Fan-out of one published track's encoded frames to its subscribers, without decoding."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame

from .keyframes import keyframe_detector

if TYPE_CHECKING:
    from .forwarded_track import ForwardedTrack

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL = 0.5
"""Seconds between two keyframe requests to one publisher track, at most."""


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


class TrackForwarder:
    """
    Forwards one published track's encoded frames to any number of subscriber tracks.

    Frames are passed by reference: nothing is copied, decoded or logged per frame.
    A track added later, or unmuted, waits for the next keyframe, which is requested
    at once.

    :param codec: The codec the publisher sends.
    :param keyframes: Asks the publisher for a keyframe.
    """

    def __init__(self, codec: RTCRtpCodecParameters, keyframes: KeyframeRequester) -> None:
        self.codec = codec
        self.muted = False
        self._keyframes = keyframes
        self._is_keyframe = keyframe_detector(codec.mimeType)
        self._tracks: tuple[ForwardedTrack, ...] = ()
        self._ended = False

    @property
    def kind(self) -> str:
        """``audio`` or ``video``."""
        return self.codec.mimeType.split("/")[0].lower()

    @property
    def tracks(self) -> tuple[ForwardedTrack, ...]:
        """The subscriber tracks currently fed."""
        return self._tracks

    def add(self, track: ForwardedTrack) -> None:
        """
        Start feeding a subscriber track, from the next keyframe.

        :param track: A :class:`ForwardedTrack` that waits for a keyframe.
        """
        if track not in self._tracks:
            self._tracks = (*self._tracks, track)
        self.request_keyframe()

    def remove(self, track: ForwardedTrack) -> None:
        """
        Stop feeding a subscriber track.

        :param track: A track previously added.
        """
        self._tracks = tuple(t for t in self._tracks if t is not track)

    def set_muted(self, muted: bool) -> None:
        """
        Stop or resume forwarding; on resume every track restarts at a keyframe.

        :param muted: True to stop forwarding.
        """
        if muted == self.muted:
            return
        self.muted = muted
        if not muted:
            for track in self._tracks:
                track.resync()
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (rate-limited)."""
        if not self._ended:
            self._keyframes.request()

    def on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """
        Forward one encoded frame from the publisher.

        :param codec: The codec of the frame.
        :param frame: The encoded frame and its RTP timestamp.
        """
        if self.muted or not self._tracks or codec.mimeType != self.codec.mimeType:
            return
        data = frame.data
        keyframe = self._is_keyframe(data)
        now = time.monotonic()
        for track in self._tracks:
            track.push(data, frame.timestamp, keyframe, now)

    def end(self) -> None:
        """The published track is gone: detach every subscriber track."""
        self._ended = True
        self._keyframes.close()
        for track in self._tracks:
            track.detach()
        self._tracks = ()
