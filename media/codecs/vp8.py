"""VP8 (RFC 7741): keyframes, the payload descriptor's picture numbers, the keyframe header."""

from __future__ import annotations

from typing import NamedTuple

from .base import CodecStrategy, RecordingFormat

_PICTURE_MASK = 0x7FFF
_START_CODE = b"\x9d\x01\x2a"


class Vp8Descriptor(NamedTuple):
    """
    Where a VP8 RTP payload descriptor (RFC 7741 section 4.2) keeps its picture numbers.

    A named tuple, not a frozen dataclass: one is parsed per video packet, and a tuple is
    built in less than half the time a frozen dataclass takes to set its fields.

    :param picture_id: The PictureID, 7 or 15 bits.
    :param picture_id_at: Offset of the PictureID in the payload.
    :param long_picture_id: True for a 15-bit PictureID.
    :param tl0_index: The TL0PICIDX, if present.
    :param tl0_index_at: Its offset in the payload.
    :param temporal_id: The temporal layer (TID, 0 for the base layer), if present.
    :param layer_sync: The Y bit: the picture depends on base-layer pictures only, so a
        subscriber may start receiving its layer here.
    """

    picture_id: int
    picture_id_at: int
    long_picture_id: bool
    tl0_index: int | None = None
    tl0_index_at: int = 0
    temporal_id: int | None = None
    layer_sync: bool = False

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
        tl0_index: int | None = None
        tl0_index_at = 0
        if payload[1] & 0x40:
            if len(payload) <= after:
                return cls(picture_id, 2, long_id)
            tl0_index, tl0_index_at = payload[after], after
            after += 1
        if payload[1] & 0x20 and len(payload) > after:
            # T bit: the TID/Y/KEYIDX byte follows (its TID is meaningful only with T set).
            layer = payload[after]
            return cls(
                picture_id, 2, long_id, tl0_index, tl0_index_at, layer >> 6, bool(layer & 0x20)
            )
        return cls(picture_id, 2, long_id, tl0_index, tl0_index_at)

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


class Vp8Codec(CodecStrategy):
    """VP8: keyframes from the frame tag, picture numbers in the payload descriptor."""

    numbers_pictures = True

    def __init__(self) -> None:
        super().__init__("video/VP8", RecordingFormat("vp8", "webm", "webm"))

    def is_keyframe(self, frame: bytes) -> bool:
        """
        Tell whether a VP8 frame is a keyframe (RFC 6386 section 9.1: P bit cleared).

        :param frame: A VP8 frame without its RTP payload descriptor.
        """
        return len(frame) > 0 and frame[0] & 1 == 0

    def starts_keyframe(self, payload: bytes, data: bytes) -> bool:
        """
        Tell whether a VP8 RTP packet is the first packet of a keyframe.

        :param payload: The RTP payload, starting with the VP8 payload descriptor.
        :param data: The same payload without the descriptor.
        """
        # S bit set and partition index 0 (RFC 7741 section 4.2): the frame starts here.
        return len(payload) > 0 and payload[0] & 0x1F == 0x10 and self.is_keyframe(data)

    def picture_numbers(self, payload: bytes) -> Vp8Descriptor | None:
        """
        The PictureID and TL0PICIDX of a VP8 payload descriptor, if it has a PictureID.

        :param payload: The RTP payload, starting with the VP8 payload descriptor.
        """
        return Vp8Descriptor.parse(payload)

    def picture_size(self, keyframe: bytes) -> tuple[int, int] | None:
        """
        The picture size a VP8 keyframe announces (RFC 6386 section 9.1).

        :param keyframe: A VP8 frame without its RTP payload descriptor.
        :return: ``(width, height)``, or None for an interframe or a malformed frame.
        """
        if len(keyframe) < 10 or keyframe[0] & 1 or keyframe[3:6] != _START_CODE:
            return None
        width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
        height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
        return (width, height) if width and height else None


VP8 = Vp8Codec()
"""The VP8 strategy."""
