"""A publisher sends at most one track of each source and kind; what is not sent does not count."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import SessionDescription

from media.errors import TooManyTracks
from media.publisher import check_one_track_per_source, default_sources


async def offer(*sections: tuple[str, str]) -> SessionDescription:
    """An aiortc offer with one section per ``(kind, direction)``, parsed."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for kind, direction in sections:
            track = VideoStreamTrack() if kind == "video" else AudioStreamTrack()
            pc.addTransceiver(track, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return SessionDescription.parse(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_two_cameras_are_refused() -> None:
    description = await offer(("video", "sendonly"), ("video", "sendonly"))
    with pytest.raises(TooManyTracks, match="camera"):
        check_one_track_per_source(description, {"0": "camera", "1": "camera"})


async def test_a_third_video_without_names_is_a_second_screen() -> None:
    description = await offer(*[("video", "sendonly")] * 3)
    with pytest.raises(TooManyTracks, match="screen"):
        check_one_track_per_source(description, default_sources(description))


async def test_a_screen_share_with_its_sound_is_one_of_each() -> None:
    description = await offer(
        ("audio", "sendonly"), ("video", "sendonly"), ("video", "sendonly"), ("audio", "sendonly")
    )
    sources = {"0": "microphone", "1": "camera", "2": "screen", "3": "screen"}
    check_one_track_per_source(description, sources)


async def test_a_stopped_share_kept_inactive_does_not_count() -> None:
    description = await offer(("video", "sendonly"), ("video", "inactive"), ("video", "sendonly"))
    check_one_track_per_source(description, {"0": "camera", "1": "screen", "2": "screen"})
