"""Each codec's strategy: keyframes without decoding, picture sizes, and refusal of the unknown."""

from __future__ import annotations

import fractions

import av
import pytest

from media.codecs import H264, OPUS, VP8, CodecStrategy, codec_for
from media.errors import UnsupportedCodec


def test_vp8_keyframe_has_the_p_bit_cleared() -> None:
    assert VP8.is_keyframe(b"\x10\x02\x00\x9d\x01\x2a")
    assert not VP8.is_keyframe(b"\x11\x02\x00")
    assert not VP8.is_keyframe(b"")


def test_vp8_packet_starts_a_keyframe_only_at_its_first_partition() -> None:
    keyframe = b"\x10\x02\x00\x9d\x01\x2a"
    assert VP8.starts_keyframe(b"\x10" + keyframe, keyframe)
    assert not VP8.starts_keyframe(b"\x00" + keyframe, keyframe)  # not the frame's start
    assert not VP8.starts_keyframe(b"\x11" + keyframe, keyframe)  # partition 1


def test_h264_keyframe_carries_an_idr_slice_or_sps() -> None:
    sps, pps, idr, slice_ = b"\x67\x42", b"\x68\xce", b"\x65\x88", b"\x41\x9a"
    assert H264.is_keyframe(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps)
    assert H264.is_keyframe(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01" + idr)
    assert not H264.is_keyframe(b"\x00\x00\x00\x01" + slice_)
    assert not H264.is_keyframe(b"\x00\x00\x01")


def test_audio_frames_are_all_independent() -> None:
    assert codec_for("audio/opus").is_keyframe(b"\x01")
    assert OPUS.starts_keyframe(b"\x01", b"\x01")


def test_codecs_that_cannot_be_forwarded_are_refused() -> None:
    with pytest.raises(ValueError):
        codec_for("video/AV1")
    with pytest.raises(UnsupportedCodec) as refused:
        codec_for("audio/L16")
    assert refused.value.code == "unsupported_codec"


def test_registry_finds_a_codec_in_any_case() -> None:
    assert codec_for("video/vp8") is VP8
    assert codec_for("VIDEO/H264") is H264
    assert (VP8.kind, H264.kind, OPUS.kind) == ("video", "video", "audio")


def test_only_vp8_packets_carry_picture_numbers() -> None:
    payload = bytes([0x90, 0xC0, 0x81, 0x02, 0x07]) + b"\x10data"  # long PictureID, TL0PICIDX
    pictures = VP8.picture_numbers(payload)
    assert pictures is not None and (pictures.picture_id, pictures.tl0_index) == (0x102, 7)
    assert VP8.numbers_pictures and not H264.numbers_pictures and not OPUS.numbers_pictures
    assert H264.picture_numbers(payload) is None


def encoded_keyframe(codec: str, width: int, height: int) -> bytes:
    """The first frame of a real encoder, which is a keyframe with its picture size."""
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.pts = 0
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    return bytes(packets[0])


@pytest.mark.parametrize(("strategy", "encoder"), [(VP8, "libvpx"), (H264, "libx264")])
def test_recorder_reads_the_picture_size_from_a_keyframe(
    strategy: CodecStrategy, encoder: str
) -> None:
    keyframe = encoded_keyframe(encoder, 320, 180)  # 180: H.264 crops its last macroblock row
    assert strategy.is_keyframe(keyframe)
    assert strategy.picture_size(keyframe) == (320, 180)
    assert strategy.recording is not None


def test_picture_size_of_what_is_no_keyframe_is_unknown() -> None:
    assert VP8.picture_size(b"\x11\x02\x00\x9d\x01\x2a\x40\x01\xb4\x00") is None
    assert H264.picture_size(b"\x00\x00\x00\x01\x41\x9a") is None
    assert OPUS.picture_size(b"\x01") is None
