"""Continuous RTP numbering for a down track whose upstream pauses or changes."""

from __future__ import annotations

import random
from collections import deque

from .codecs import PictureNumbers

_SEQ_MASK = 0xFFFF
_TS_MASK = 0xFFFFFFFF
_PICTURE_MASK = 0x7FFF
_HALF_SEQ = 0x8000
_HALF_TS = 0x80000000


class _Offsets:
    """
    An offset along a wrapping number line that shrinks by one after each dropped number.

    The offsets before recent drops are remembered, so a late packet (reordered or
    retransmitted) gets the number it would have had in order.

    :param mask: The numbers' width as a mask, e.g. ``0xFFFF``.
    """

    def __init__(self, mask: int) -> None:
        self._mask = mask
        self._half = (mask + 1) >> 1
        self.current = 0
        self._changes: deque[tuple[int, int]] = deque(maxlen=64)

    def reset(self, offset: int) -> None:
        """Start over with `offset` and no drops."""
        self.current = offset
        self._changes.clear()

    def skip(self, start: int) -> None:
        """
        Numbers from `start` on move down by one (the number before was dropped).

        :param start: The first upstream number that moves.
        """
        self._changes.append((start, self.current))
        self.current = (self.current - 1) & self._mask

    def at(self, value: int) -> int:
        """
        The offset of upstream number `value`.

        :param value: An upstream number.
        """
        offset = self.current
        for start, before in reversed(self._changes):
            if 0 < (start - value) & self._mask < self._half:
                offset = before
            else:
                break
        return offset


class RtpRewriter:
    """
    Maps the RTP numbering of successive upstream tracks onto one continuous output stream.

    Within a segment (one upstream track, from a keyframe on) the output is the input moved
    by fixed offsets, so gaps, reordering and 16/32-bit wrap-around pass through unchanged
    and the subscriber can still ask for what it lost. A new segment (after :meth:`restart`:
    a new, resumed or unmuted upstream) continues the sequence numbers and picture numbers
    right after the newest ones sent, and the timestamps after the wall-clock time elapsed
    since the newest packet sent (at least `min_step`), so the receiver's jitter buffer
    sees a natural gap. The first segment starts at random numbers, sequence numbers in
    the lower half (see aiortc's ``random_sequence_number``). Packets :meth:`drop` leaves out
    (pictures of a temporal layer the subscriber does not get) take no sequence number and
    no picture number, so the output has no gap where they were.

    :param clock_rate: The codec's RTP clock rate in Hz.
    """

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._min_step = clock_rate // 50  # 20 ms: one audio frame
        self._pending = True
        self._seq_offsets = _Offsets(_SEQ_MASK)
        self._ts_offset = 0
        self._picture_offsets = _Offsets(_PICTURE_MASK)
        self._picture_offset = 0
        self._tl0_offset = 0
        self._newest_seq = 0
        self._newest_picture: int | None = None
        self._last_seq = (random.getrandbits(16) % _HALF_SEQ - 1) & _SEQ_MASK
        self._last_ts = random.getrandbits(32)
        self._last_picture: int | None = None
        self._last_tl0: int | None = None
        self._last_time: float | None = None

    @property
    def picture_offset(self) -> int:
        """What is added to the picture number (VP8 PictureID) of the packet just rewritten."""
        return self._picture_offset

    @property
    def tl0_offset(self) -> int:
        """What is added to TL0PICIDX values in the current segment."""
        return self._tl0_offset

    def restart(self) -> None:
        """Make the next packet start a new segment."""
        self._pending = True

    def rewrite(
        self,
        sequence_number: int,
        timestamp: int,
        now: float,
        pictures: PictureNumbers | None = None,
    ) -> tuple[int, int]:
        """
        Return the output ``(sequence number, timestamp)`` of a packet.

        :param sequence_number: The packet's sequence number upstream.
        :param timestamp: Its RTP timestamp upstream.
        :param now: Its arrival time in seconds (a monotonic clock).
        :param pictures: Its picture numbers, if its codec has them; afterwards
            :attr:`picture_offset` and :attr:`tl0_offset` say how to rewrite them.
        """
        if self._pending:
            self._start_segment(sequence_number, timestamp, now, pictures)
        self._note_newest(sequence_number, pictures)
        seq = (sequence_number + self._seq_offsets.at(sequence_number)) & _SEQ_MASK
        ts = (timestamp + self._ts_offset) & _TS_MASK
        if pictures is not None:
            self._picture_offset = self._picture_offsets.at(pictures.picture_id)
        if (seq - self._last_seq) & _SEQ_MASK < _HALF_SEQ:
            self._last_seq = seq
            self._last_time = now
            if (ts - self._last_ts) & _TS_MASK < _HALF_TS:
                self._last_ts = ts
            if pictures is not None:
                self._last_picture = (pictures.picture_id + self._picture_offset) & _PICTURE_MASK
                if pictures.tl0_index is not None:
                    self._last_tl0 = (pictures.tl0_index + self._tl0_offset) & 0xFF
        return seq, ts

    def drop(self, sequence_number: int, pictures: PictureNumbers | None = None) -> None:
        """
        Leave a packet out of the output without a gap in its numbering.

        Only a packet newer than every one seen moves the numbers; a late one leaves a
        hole, as a loss would.

        :param sequence_number: The packet's sequence number upstream.
        :param pictures: Its picture numbers, if its codec has them.
        """
        if self._pending:
            return
        if (sequence_number - self._newest_seq) & _SEQ_MASK < _HALF_SEQ:
            self._seq_offsets.skip((sequence_number + 1) & _SEQ_MASK)
        if pictures is not None and self._is_new_picture(pictures.picture_id):
            self._picture_offsets.skip((pictures.picture_id + 1) & _PICTURE_MASK)
        self._note_newest(sequence_number, pictures)

    def _is_new_picture(self, picture_id: int) -> bool:
        newest = self._newest_picture
        return newest is None or 0 < (picture_id - newest) & _PICTURE_MASK < 0x4000

    def _note_newest(self, sequence_number: int, pictures: PictureNumbers | None) -> None:
        if (sequence_number - self._newest_seq) & _SEQ_MASK < _HALF_SEQ:
            self._newest_seq = sequence_number
        if pictures is not None and self._is_new_picture(pictures.picture_id):
            self._newest_picture = pictures.picture_id

    def _start_segment(
        self, sequence_number: int, timestamp: int, now: float, pictures: PictureNumbers | None
    ) -> None:
        self._pending = False
        self._seq_offsets.reset((self._last_seq + 1 - sequence_number) & _SEQ_MASK)
        self._newest_seq = sequence_number
        self._newest_picture = None
        if self._last_time is None:
            out = self._last_ts
        else:
            elapsed = round((now - self._last_time) * self._clock_rate)
            out = self._last_ts + max(self._min_step, elapsed)
        self._ts_offset = (out - timestamp) & _TS_MASK
        if pictures is not None:
            if self._last_picture is not None:
                self._picture_offsets.reset(
                    (self._last_picture + 1 - pictures.picture_id) & _PICTURE_MASK
                )
            if self._last_tl0 is not None and pictures.tl0_index is not None:
                self._tl0_offset = (self._last_tl0 + 1 - pictures.tl0_index) & 0xFF
