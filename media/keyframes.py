"""Recognising keyframes in encoded frames and RTP packets, per codec, without decoding them."""

from __future__ import annotations

from collections.abc import Callable

H264_KEYFRAME_NAL_TYPES = frozenset((5, 7))  # IDR slice, sequence parameter set


def is_vp8_keyframe(frame: bytes) -> bool:
    """
    Tell whether a VP8 frame is a keyframe (RFC 6386 section 9.1: P bit cleared).

    :param frame: A VP8 frame without its RTP payload descriptor.
    """
    return len(frame) > 0 and frame[0] & 1 == 0


def is_h264_keyframe(frame: bytes) -> bool:
    """
    Tell whether an H.264 access unit starts a decodable picture (an IDR slice or an SPS).

    :param frame: An Annex B access unit (NAL units behind start codes).
    """
    position = frame.find(b"\x00\x00\x01")
    while position != -1 and position + 3 < len(frame):
        if frame[position + 3] & 0x1F in H264_KEYFRAME_NAL_TYPES:
            return True
        position = frame.find(b"\x00\x00\x01", position + 3)
    return False


def is_independent_frame(frame: bytes) -> bool:
    """
    Audio frames never depend on earlier ones for a new listener.

    :param frame: An encoded audio frame.
    """
    return True


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """
    Return the keyframe test for a codec.

    :param mime_type: The codec's MIME type, e.g. ``video/VP8``.
    """
    name = mime_type.lower()
    if name == "video/vp8":
        return is_vp8_keyframe
    if name == "video/h264":
        return is_h264_keyframe
    if name.startswith("audio/"):
        return is_independent_frame
    raise ValueError(f"cannot forward {mime_type}: no keyframe detection")


def starts_vp8_keyframe(payload: bytes, data: bytes) -> bool:
    """
    Tell whether a VP8 RTP packet is the first packet of a keyframe.

    :param payload: The RTP payload, starting with the VP8 payload descriptor.
    :param data: The same payload without the descriptor.
    """
    # S bit set and partition index 0 (RFC 7741 section 4.2): the frame starts here.
    return len(payload) > 0 and payload[0] & 0x1F == 0x10 and is_vp8_keyframe(data)


def starts_h264_keyframe(payload: bytes, data: bytes) -> bool:
    """
    Tell whether an H.264 RTP packet carries the start of an IDR slice or an SPS.

    :param payload: The RTP payload (a NAL unit, STAP-A or FU-A).
    :param data: The NAL units it starts, behind start codes.
    """
    return is_h264_keyframe(data)


def starts_audio_frame(payload: bytes, data: bytes) -> bool:
    """
    A new listener can start at any audio packet.

    :param payload: The RTP payload.
    :param data: The same payload, depayloaded.
    """
    return True


def packet_keyframe_detector(mime_type: str) -> Callable[[bytes, bytes], bool]:
    """
    Return the test for RTP packets a new subscriber can start at.

    :param mime_type: The codec's MIME type, e.g. ``video/VP8``.
    """
    name = mime_type.lower()
    if name == "video/vp8":
        return starts_vp8_keyframe
    if name == "video/h264":
        return starts_h264_keyframe
    if name.startswith("audio/"):
        return starts_audio_frame
    raise ValueError(f"cannot forward {mime_type}: no keyframe detection")
