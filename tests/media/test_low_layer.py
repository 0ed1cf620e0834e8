"""A camera with a low layer: a weak subscriber gets it, then a pause, then the full one again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from media import ConsultMedia
from media.consult import MIN_PUBLISHER_BITRATE
from media.errors import InvalidLayer

from .clients import HEIGHT, WIDTH, MovingBarTrack, TestParticipant, wait_until
from .test_recorder import new_manifest

FULL = (WIDTH, HEIGHT)
LOW = (WIDTH // 2, HEIGHT // 2)


async def test_a_weak_subscriber_gets_the_low_layer_then_a_pause_then_the_full_camera_again(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, nurse, patient = participants("doctor"), participants("nurse"), participants("patient")
    for publisher in (doctor, nurse):
        await publisher.join()
        await publisher.publish(low_layer=True, noise=True)
    await patient.join()
    cameras = ("doctor", "nurse")
    await wait_until(lambda: all(patient.size_from(who, "camera") == FULL for who in cameras))
    # One camera tile per publisher: the low layer is never offered as a track of its own.
    offered = sorted((t["participant_id"], t["source"]) for t in patient.tracks().values())
    assert offered == [
        ("doctor", "camera"),
        ("doctor", "microphone"),
        ("nurse", "camera"),
        ("nurse", "microphone"),
    ]

    async def remb(bitrate: int, fraction_lost: int) -> None:
        while True:  # a browser repeats its REMB and receiver reports about once a second
            await patient.send_remb(bitrate, fraction_lost)
            await asyncio.sleep(0.3)

    # A link that loses heavily (31 %), and whose browser's own estimate (150 kbit/s) cannot
    # take even the two low layers (each a few hundred kbit/s of noise): the first camera goes
    # to its low layer, the other is paused. Not audio only: that estimate is over 100 kbit/s.
    weak = asyncio.ensure_future(remb(150_000, fraction_lost=80))
    try:
        await wait_until(lambda: bool((patient.last_event("receive_mode") or {}).get("paused")))
        mode = patient.last_event("receive_mode")
        assert mode is not None and mode["audio_only"] is False
        assert len(mode["paused"]) == 1
        paused = mode["paused"][0]
        assert paused["source"] == "camera" and paused["reason"] == "weak_connection"
        (shown,) = set(cameras) - {paused["participant_id"]}
        await wait_until(lambda: patient.size_from(shown, "camera") == LOW)
        await asyncio.sleep(0.3)  # packets of the paused camera already on their way
        frozen = patient.frames_from(paused["participant_id"], "camera")
        moving = patient.frames_from(shown, "camera")
        await wait_until(lambda: patient.frames_from(shown, "camera") > moving + 20)
        assert patient.size_from(shown, "camera") == LOW
        assert patient.frames_from(paused["participant_id"], "camera") == frozen
        # The low layer never speaks REMB: the browser would take it as the cap of all it sends.
        owner = patient.consult.participants[shown].publisher
        full = next(t for t in owner.tracks if t.source == "camera" and t.layer is None)
        assert full.low is not None and full.low.remb is not None and full.low.remb.silent
        assert full.remb is not None and not full.remb.silent
    finally:
        weak.cancel()

    strong = asyncio.ensure_future(remb(3_000_000, fraction_lost=0))
    try:
        await wait_until(lambda: (patient.last_event("receive_mode") or {}).get("paused") == [])
        # Both climb back to the full camera and go on (a later dip of a loaded machine's
        # round trip may take one down again: that is the estimator's business, not asserted).
        await wait_until(lambda: all(patient.size_from(who, "camera") == FULL for who in cameras))
        counts = {who: patient.frames_from(who, "camera") for who in cameras}
        await wait_until(
            lambda: all(patient.frames_from(who, "camera") > counts[who] + 20 for who in cameras)
        )
    finally:
        strong.cancel()


async def test_the_full_layer_s_cap_follows_those_who_receive_it(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await doctor.publish(low_layer=True)
    await patient.join()
    await wait_until(lambda: patient.size_from("doctor", "camera") == FULL)
    camera = next(
        t for t in doctor.consult.participants["doctor"].publisher.tracks if t.layer is None
    )
    assert camera.kind == "video" and camera.remb is not None

    async def remb(bitrate: int) -> None:
        while True:
            await patient.send_remb(bitrate, fraction_lost=20)
            await asyncio.sleep(0.3)

    weak = asyncio.ensure_future(remb(2_000))
    try:
        await wait_until(lambda: patient.size_from("doctor", "camera") == LOW)
        # Its only subscriber takes the low layer: the full one is capped to the least, and the
        # publisher's one cap keeps room for its low layer beside it.
        await wait_until(
            lambda: (
                camera.remb is not None
                and camera.remb.limit is not None
                and MIN_PUBLISHER_BITRATE < camera.remb.limit < MIN_PUBLISHER_BITRATE + 500_000
            )
        )
    finally:
        weak.cancel()


async def test_only_a_camera_may_have_a_low_layer(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor = participants("doctor")
    await doctor.join()
    assert doctor.media is not None
    camera = MovingBarTrack()
    doctor.publisher.addTrack(camera)
    await doctor.publisher.setLocalDescription(await doctor.publisher.createOffer())
    offer = doctor.publisher.localDescription.sdp
    with pytest.raises(InvalidLayer):
        await doctor.media.handle_publisher_offer(offer, {"0": "screen"}, {"0": "low"})
    with pytest.raises(InvalidLayer):
        await doctor.media.handle_publisher_offer(offer, None, {"7": "low"})
    camera.stop()


async def test_the_recording_has_the_full_camera_only(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor = participants("doctor")
    await doctor.join()
    await doctor.publish(low_layer=True)
    await wait_until(lambda: len(consult.participants["doctor"].publisher.tracks) == 3)
    consult.start_recording(tmp_path / "rec-1", new_manifest())
    await asyncio.sleep(1.5)
    manifest = await consult.stop_recording()
    assert manifest is not None
    assert sorted(t.kind for t in manifest.tracks) == ["audio", "video"]
    (video,) = (t for t in manifest.tracks if t.kind == "video")
    assert (video.width, video.height) == FULL
