"""Keyframes are recognised in encoded frames without decoding them."""

from __future__ import annotations

import pytest

from media.keyframes import is_h264_keyframe, is_vp8_keyframe, keyframe_detector


def test_vp8_keyframe_has_the_p_bit_cleared() -> None:
    assert is_vp8_keyframe(b"\x10\x02\x00\x9d\x01\x2a")
    assert not is_vp8_keyframe(b"\x11\x02\x00")
    assert not is_vp8_keyframe(b"")


def test_h264_keyframe_carries_an_idr_slice_or_sps() -> None:
    sps, pps, idr, slice_ = b"\x67\x42", b"\x68\xce", b"\x65\x88", b"\x41\x9a"
    assert is_h264_keyframe(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps)
    assert is_h264_keyframe(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01" + idr)
    assert not is_h264_keyframe(b"\x00\x00\x00\x01" + slice_)
    assert not is_h264_keyframe(b"\x00\x00\x01")


def test_audio_frames_are_all_independent() -> None:
    assert keyframe_detector("audio/opus")(b"\x01")


def test_codecs_that_cannot_be_forwarded_are_refused() -> None:
    with pytest.raises(ValueError):
        keyframe_detector("video/AV1")
