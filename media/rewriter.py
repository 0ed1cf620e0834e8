"""Continuous RTP numbering for a subscriber stream whose source pauses or changes."""

from __future__ import annotations

import random
from dataclasses import dataclass

_SEQ_MASK = 0xFFFF
_TS_MASK = 0xFFFFFFFF
_PICTURE_MASK = 0x7FFF
_HALF_SEQ = 0x8000
_HALF_TS = 0x80000000


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """
    Where a VP8 RTP payload descriptor (RFC 7741 section 4.2) keeps its picture numbers.

    :param picture_id: The PictureID, 7 or 15 bits.
    :param picture_id_at: Offset of the PictureID in the payload.
    :param long_picture_id: True for a 15-bit PictureID.
    :param tl0_index: The TL0PICIDX, if present.
    :param tl0_index_at: Its offset in the payload.
    """

    picture_id: int
    picture_id_at: int
    long_picture_id: bool
    tl0_index: int | None = None
    tl0_index_at: int = 0

    @classmethod
    def parse(cls, payload: bytes) -> Vp8Descriptor | None:
        """
        Locate the picture numbers of a VP8 payload; None when it carries no PictureID.

        :param payload: An RTP payload starting with the VP8 payload descriptor.
        """
        if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
            return None
        long_id = bool(payload[2] & 0x80)
        if long_id:
            if len(payload) < 4:
                return None
            picture_id = (payload[2] & 0x7F) << 8 | payload[3]
            after = 4
        else:
            picture_id = payload[2]
            after = 3
        if payload[1] & 0x40 and len(payload) > after:
            return cls(picture_id, 2, long_id, payload[after], after)
        return cls(picture_id, 2, long_id)

    def rewrite(self, payload: bytes, picture_offset: int, tl0_offset: int) -> bytes:
        """
        Return `payload` with its picture numbers moved forward by the given offsets.

        :param payload: The payload this descriptor was parsed from.
        :param picture_offset: Added to the PictureID, modulo its width.
        :param tl0_offset: Added to the TL0PICIDX, modulo 256.
        """
        if not picture_offset and not (tl0_offset and self.tl0_index is not None):
            return payload
        out = bytearray(payload)
        at = self.picture_id_at
        if self.long_picture_id:
            value = (self.picture_id + picture_offset) & _PICTURE_MASK
            out[at] = 0x80 | value >> 8
            out[at + 1] = value & 0xFF
        else:
            out[at] = (self.picture_id + picture_offset) & 0x7F
        if self.tl0_index is not None:
            out[self.tl0_index_at] = (self.tl0_index + tl0_offset) & 0xFF
        return bytes(out)


class RtpRewriter:
    """
    Maps the RTP numbering of successive sources onto one continuous output stream.

    Within a segment (one source, from a keyframe on) the output is the input moved by
    fixed offsets, so gaps, reordering and 16/32-bit wrap-around pass through unchanged
    and the receiver can still ask for what it lost. A new segment (after :meth:`restart`:
    a new, resumed or unmuted source) continues the sequence numbers and VP8 picture IDs
    right after the newest ones sent, and the timestamps after the wall-clock time elapsed
    since the newest packet sent (at least `min_step`), so the receiver's jitter buffer
    sees a natural gap. The first segment starts at random numbers, sequence numbers in
    the lower half (see aiortc's ``random_sequence_number``).

    :param clock_rate: The codec's RTP clock rate in Hz.
    """

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self._min_step = clock_rate // 50  # 20 ms: one audio frame
        self._pending = True
        self._seq_offset = 0
        self._ts_offset = 0
        self._picture_offset = 0
        self._tl0_offset = 0
        self._last_seq = (random.getrandbits(16) % _HALF_SEQ - 1) & _SEQ_MASK
        self._last_ts = random.getrandbits(32)
        self._last_picture: int | None = None
        self._last_tl0: int | None = None
        self._last_time: float | None = None

    @property
    def picture_offset(self) -> int:
        """What is added to VP8 PictureIDs in the current segment."""
        return self._picture_offset

    @property
    def tl0_offset(self) -> int:
        """What is added to VP8 TL0PICIDX values in the current segment."""
        return self._tl0_offset

    def restart(self) -> None:
        """Make the next packet start a new segment."""
        self._pending = True

    def rewrite(
        self, sequence_number: int, timestamp: int, now: float, vp8: Vp8Descriptor | None = None
    ) -> tuple[int, int]:
        """
        Return the output ``(sequence number, timestamp)`` of a packet.

        :param sequence_number: The packet's sequence number in its source.
        :param timestamp: Its RTP timestamp in its source.
        :param now: Its arrival time in seconds (a monotonic clock).
        :param vp8: Its VP8 descriptor, if any; afterwards :attr:`picture_offset` and
            :attr:`tl0_offset` say how to rewrite it.
        """
        if self._pending:
            self._start_segment(sequence_number, timestamp, now, vp8)
        seq = (sequence_number + self._seq_offset) & _SEQ_MASK
        ts = (timestamp + self._ts_offset) & _TS_MASK
        if (seq - self._last_seq) & _SEQ_MASK < _HALF_SEQ:
            self._last_seq = seq
            self._last_time = now
            if (ts - self._last_ts) & _TS_MASK < _HALF_TS:
                self._last_ts = ts
            if vp8 is not None:
                self._last_picture = (vp8.picture_id + self._picture_offset) & _PICTURE_MASK
                if vp8.tl0_index is not None:
                    self._last_tl0 = (vp8.tl0_index + self._tl0_offset) & 0xFF
        return seq, ts

    def _start_segment(
        self, sequence_number: int, timestamp: int, now: float, vp8: Vp8Descriptor | None
    ) -> None:
        self._pending = False
        self._seq_offset = (self._last_seq + 1 - sequence_number) & _SEQ_MASK
        if self._last_time is None:
            out = self._last_ts
        else:
            elapsed = round((now - self._last_time) * self._clock_rate)
            out = self._last_ts + max(self._min_step, elapsed)
        self._ts_offset = (out - timestamp) & _TS_MASK
        if vp8 is not None:
            if self._last_picture is not None:
                self._picture_offset = (self._last_picture + 1 - vp8.picture_id) & _PICTURE_MASK
            if self._last_tl0 is not None and vp8.tl0_index is not None:
                self._tl0_offset = (self._last_tl0 + 1 - vp8.tl0_index) & 0xFF
