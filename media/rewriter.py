"""Continuous RTP timestamps for a subscriber track whose source pauses or changes."""

from __future__ import annotations

_HALF = 1 << 31
_MASK = (1 << 32) - 1


class TimestampRewriter:
    """
    Maps the timestamps of successive sources onto one monotonic timeline.

    Within a source, the output advances by the source's own timestamp difference
    (taken modulo 2**32, so a wrapped 32-bit RTP timestamp is followed correctly).
    After :meth:`restart`, or when a source jumps by more than `max_jump` seconds, the
    output advances by the wall-clock time elapsed since the previous frame, and at least
    by `min_step`, so the receiver's jitter buffer sees a natural gap.
    The output starts at 0 and is not wrapped: aiortc's sender adds its own random
    origin and wraps it to 32 bits.

    :param clock_rate: The codec's RTP clock rate in Hz.
    :param max_jump: Largest timestamp step, in seconds, still taken as continuous.
    """

    def __init__(self, clock_rate: int, max_jump: float = 10.0) -> None:
        self._clock_rate = clock_rate
        self._max_jump = int(max_jump * clock_rate)
        self._min_step = clock_rate // 50  # 20 ms: one audio frame
        self._last_in: int | None = None
        self._last_out = 0
        self._last_time = 0.0
        self._restart = False

    def restart(self) -> None:
        """Make the next timestamp start a new segment (a new, resumed or unmuted source)."""
        self._restart = True

    def rewrite(self, timestamp: int, now: float) -> int:
        """
        Return the output timestamp for a frame.

        :param timestamp: The frame's RTP timestamp in the source's timeline.
        :param now: The frame's arrival time in seconds (a monotonic clock).
        """
        if self._last_in is None:
            out = 0
        else:
            delta = ((timestamp - self._last_in + _HALF) & _MASK) - _HALF
            if self._restart or delta > self._max_jump or delta < -self._max_jump:
                elapsed = round((now - self._last_time) * self._clock_rate)
                out = self._last_out + max(self._min_step, elapsed)
            elif delta < 0:
                # A late frame: keep the timeline monotonic and measure from the newest.
                return self._last_out
            else:
                out = self._last_out + delta
        self._last_in = timestamp
        self._last_out = out
        self._last_time = now
        self._restart = False
        return out
