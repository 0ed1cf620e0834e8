"""H.264 (RFC 6184): keyframes from NAL unit types, the picture size from the SPS."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from .base import CodecStrategy, RecordingFormat

logger = logging.getLogger(__name__)

START_CODE = b"\x00\x00\x01"
SPS = 7
KEYFRAME_NAL_TYPES = frozenset((5, SPS))  # IDR slice, sequence parameter set
#: H.264 profiles whose SPS carries chroma format, bit depths and scaling matrices.
HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


def _nal_starts(access_unit: bytes) -> Iterator[int]:
    """The offsets of the NAL units behind the start codes of an Annex B access unit."""
    position = access_unit.find(START_CODE)
    while position != -1:
        yield position + 3
        position = access_unit.find(START_CODE, position + 3)


def _nal_units(access_unit: bytes) -> list[bytes]:
    starts = list(_nal_starts(access_unit))
    ends = [start - 3 for start in starts[1:]] + [len(access_unit)]
    return [access_unit[start:end].rstrip(b"\x00") for start, end in zip(starts, ends, strict=True)]


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _BitReader:
    """Reads bits and Exp-Golomb codes from an RBSP (emulation prevention removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def bit(self) -> int:
        byte = self._data[self._position >> 3]  # IndexError past the end: a malformed SPS
        value = (byte >> (7 - (self._position & 7))) & 1
        self._position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + reader.se() + 256) % 256
        last = following or last


def sps_picture_size(sps: bytes) -> tuple[int, int]:
    """
    The cropped picture size of an H.264 sequence parameter set (ITU-T H.264 7.3.2.1.1).

    :param sps: The SPS NAL unit, header byte included, emulation prevention removed.
    :raises ValueError: (or IndexError) on a malformed SPS.
    """
    reader = _BitReader(sps[1:])
    profile = reader.bits(8)
    reader.bits(16)  # constraint flags, level
    reader.ue()  # seq_parameter_set_id
    chroma_format = 1
    separate_planes = 0
    if profile in HIGH_PROFILES:
        chroma_format = reader.ue()
        if chroma_format == 3:
            separate_planes = reader.bit()
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bit()  # qpprime_y_zero_transform_bypass_flag
        if reader.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if reader.bit():
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    order_type = reader.ue()
    if order_type == 0:
        reader.ue()
    elif order_type == 1:
        reader.bit()
        reader.se()
        reader.se()
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = reader.ue() + 1
    height_units = reader.ue() + 1
    frame_mbs_only = reader.bit()
    if not frame_mbs_only:
        reader.bit()  # mb_adaptive_frame_field_flag
    reader.bit()  # direct_8x8_inference_flag
    crop = (0, 0, 0, 0)
    if reader.bit():
        crop = (reader.ue(), reader.ue(), reader.ue(), reader.ue())
    if chroma_format == 0 or separate_planes:
        unit_x, unit_y = 1, 2 - frame_mbs_only
    else:
        unit_x = 1 if chroma_format == 3 else 2
        unit_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - unit_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise ValueError("SPS describes an empty picture")
    return width, height


class H264Codec(CodecStrategy):
    """H.264: a decoder can start at an IDR slice or a sequence parameter set."""

    def __init__(self) -> None:
        super().__init__("video/H264", RecordingFormat("h264", "matroska", "mkv"))

    def is_keyframe(self, frame: bytes) -> bool:
        """
        Tell whether an H.264 access unit starts a decodable picture (an IDR slice or an SPS).

        :param frame: An Annex B access unit (NAL units behind start codes).
        """
        size = len(frame)
        return any(
            start < size and frame[start] & 0x1F in KEYFRAME_NAL_TYPES
            for start in _nal_starts(frame)
        )

    def starts_keyframe(self, payload: bytes, data: bytes) -> bool:
        """
        Tell whether an H.264 RTP packet carries the start of an IDR slice or an SPS.

        :param payload: The RTP payload (a NAL unit, STAP-A or FU-A).
        :param data: The NAL units it starts, behind start codes.
        """
        return self.is_keyframe(data)

    def picture_size(self, keyframe: bytes) -> tuple[int, int] | None:
        """
        The picture size of the SPS in an H.264 access unit, if it carries one.

        :param keyframe: Annex B NAL units behind start codes.
        :return: ``(width, height)``, or None without a (valid) SPS.
        """
        for nal in _nal_units(keyframe):
            if nal and nal[0] & 0x1F == SPS:
                try:
                    return sps_picture_size(_rbsp(nal))
                except (ValueError, IndexError):
                    logger.warning("an H.264 SPS could not be parsed")
                    return None
        return None


H264 = H264Codec()
"""The H.264 strategy."""
