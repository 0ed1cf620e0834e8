"""Picture sizes read from encoded frames (VP8 keyframe header, H.264 SPS), without decoding."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

VP8_START_CODE = b"\x9d\x01\x2a"
H264_SPS = 7
#: H.264 profiles whose SPS carries chroma format, bit depths and scaling matrices.
H264_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """
    The picture size a VP8 keyframe announces (RFC 6386 section 9.1).

    :param frame: A VP8 frame without its RTP payload descriptor.
    :return: ``(width, height)``, or None for an interframe or a malformed frame.
    """
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != VP8_START_CODE:
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


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


def _nal_units(access_unit: bytes) -> list[bytes]:
    units: list[bytes] = []
    starts: list[int] = []
    position = access_unit.find(b"\x00\x00\x01")
    while position != -1:
        starts.append(position + 3)
        position = access_unit.find(b"\x00\x00\x01", position + 3)
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(access_unit)
        units.append(access_unit[start:end].rstrip(b"\x00"))
    return units


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + reader.se() + 256) % 256
        last = following or last


def h264_sps_dimensions(sps: bytes) -> tuple[int, int]:
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
    if profile in H264_HIGH_PROFILES:
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


def h264_dimensions(access_unit: bytes) -> tuple[int, int] | None:
    """
    The picture size of the SPS in an H.264 access unit, if it carries one.

    :param access_unit: Annex B NAL units behind start codes.
    :return: ``(width, height)``, or None without a (valid) SPS.
    """
    for nal in _nal_units(access_unit):
        if nal and nal[0] & 0x1F == H264_SPS:
            try:
                return h264_sps_dimensions(_rbsp(nal))
            except (ValueError, IndexError):
                logger.warning("an H.264 SPS could not be parsed")
                return None
    return None


def picture_dimensions(mime_type: str, frame: bytes) -> tuple[int, int] | None:
    """
    The picture size announced by a video keyframe.

    :param mime_type: ``video/VP8`` or ``video/H264``.
    :param frame: An encoded keyframe.
    """
    name = mime_type.lower()
    if name == "video/vp8":
        return vp8_dimensions(frame)
    if name == "video/h264":
        return h264_dimensions(frame)
    return None
