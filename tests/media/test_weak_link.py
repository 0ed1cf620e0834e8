"""A subscriber whose link weakens gets audio only, is told so, and gets video back."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable

from aiortc.sdp import SessionDescription
from prometheus_client import REGISTRY

from media.aiortc_hooks import on_receiver_feedback, tap_rtp_packets
from media.consult import MIN_PUBLISHER_BITRATE

from .clients import TestParticipant, wait_until
from .conftest import VOICE_BITRATE


async def test_a_subscriber_whose_remb_falls_gets_audio_only_until_it_recovers(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await doctor.publish()
    await patient.join()
    await patient.publish()
    await wait_until(lambda: patient.frames_from("doctor", "camera") > 10)
    await wait_until(lambda: patient.last_event("link_quality") is not None)
    qualities = patient.last_event("link_quality")
    assert qualities is not None and set(qualities["participants"]) == {"doctor", "patient"}
    assert patient.last_event("receive_mode") is None  # nothing to say while all is well

    # The stand-in camera sends about 10 kbit/s: a link that cannot carry it reports less
    # (a REMB above what is sent says nothing about the link), and loses packets (a low
    # REMB alone may be the receiver's own CPU).
    media = doctor.consult.participants["doctor"]
    camera = next(t for t in media.publisher.tracks if t.source == "camera")
    sender = next(t.sender for t in doctor.publisher.getTransceivers() if t.kind == "video")
    remb_to_doctor: list[int] = []
    on_receiver_feedback(sender, 90000, remb_to_doctor.append, lambda *report: None)
    weak_before = audio_only_seconds("weak_connection")
    weak = asyncio.ensure_future(report_link(patient, 4_000, fraction_lost=40))
    try:
        await wait_until(lambda: patient.last_event("receive_mode") is not None)
        assert patient.last_event("receive_mode") == {
            "audio_only": True,
            "reason": "weak_connection",
            "paused": [],
        }
        await asyncio.sleep(0.3)  # packets already on their way
        video = patient.frames_from("doctor", "camera")
        audio = patient.frames_from("doctor", "microphone")
        await wait_until(lambda: patient.frames_from("doctor", "microphone") > audio + 25)
        assert patient.frames_from("doctor", "camera") == video  # audio goes on, video not
        assert doctor.last_event("receive_mode") is None  # the doctor's link is not weak
        # The doctor's camera reaches no one: its publisher is told to send little.
        assert camera.remb is not None
        await wait_until(lambda: camera.remb.limit == MIN_PUBLISHER_BITRATE)  # type: ignore[union-attr]
        assert remb_to_doctor and remb_to_doctor[-1] <= MIN_PUBLISHER_BITRATE
        # /metrics counts it, without naming the consult.
        await wait_until(lambda: audio_only_seconds("weak_connection") > weak_before)
    finally:
        weak.cancel()

    strong = asyncio.ensure_future(report_link(patient, 3_000_000, fraction_lost=0))
    try:
        await wait_until(
            lambda: (
                patient.last_event("receive_mode")
                == {
                    "audio_only": False,
                    "reason": None,
                    "paused": [],
                }
            )
        )
        video = patient.frames_from("doctor", "camera")
        await wait_until(lambda: patient.frames_from("doctor", "camera") > video + 10)
        await wait_until(lambda: camera.remb.limit is None)  # type: ignore[union-attr]
    finally:
        strong.cancel()


async def test_a_link_too_weak_for_every_voice_keeps_one_then_gets_them_all_back(
    participants: Callable[[str], TestParticipant],
) -> None:
    """Three voices on a link that delivers a third of them: one goes on, whole, and the page
    is told whose are paused; once the link recovers, every voice and video comes back."""
    speakers = ["doctor", "expert-a", "expert-b"]
    listener = participants("patient")
    for speaker in map(participants, speakers):
        await speaker.join()
        await speaker.publish()
    await listener.join()
    for speaker in speakers:
        await wait_until(lambda s=speaker: listener.frames_from(s, "camera") > 5)
    heard = voice_packets(listener)

    def paused_voices() -> set[str]:
        mode = listener.last_event("receive_mode") or {"paused": []}
        return {p["participant_id"] for p in mode["paused"] if p["source"] == "microphone"}

    weak = asyncio.ensure_future(report_link(listener, 4_000, fraction_lost=170))  # two thirds lost
    try:
        await wait_until(lambda: len(paused_voices()) == 2)
        mode = listener.last_event("receive_mode")
        assert mode is not None and mode["audio_only"] and mode["reason"] == "weak_connection"
        assert all(p["reason"] == "weak_connection" for p in mode["paused"])
        await asyncio.sleep(0.3)  # packets already on their way
        before = {speaker: heard[speaker] for speaker in speakers}
        await asyncio.sleep(1.0)
        (kept,) = set(speakers) - paused_voices()
        assert heard[kept] > before[kept] + 25  # 50 packets a second
        for silent in paused_voices():
            assert heard[silent] == before[silent]
    finally:
        weak.cancel()

    strong = asyncio.ensure_future(report_link(listener, 3_000_000, fraction_lost=0))
    try:
        await wait_until(
            lambda: (
                listener.last_event("receive_mode")
                == {"audio_only": False, "reason": None, "paused": []}
            )
        )
        before = {speaker: heard[speaker] for speaker in speakers}
        for speaker in speakers:
            await wait_until(lambda s=speaker: heard[s] > before[s] + 25)
    finally:
        strong.cancel()


async def report_link(subscriber: TestParticipant, bitrate: int, fraction_lost: int) -> None:
    """Report a link of that capacity and loss, as a browser repeats its REMB and receiver
    reports about once a second, until cancelled."""
    while True:
        await subscriber.send_remb(bitrate, fraction_lost)
        await asyncio.sleep(0.3)


def voice_packets(listener: TestParticipant) -> Counter[str]:
    """Counts the RTP packets of each speaker's voice `listener` receives, from now on.

    aiortc's client hands every audio packet of a bundle to one receiver: they are told apart
    by SSRC, as the server's offer names them.
    """
    tracks = listener.tracks()
    speaker_of = {
        media.ssrc[0].ssrc: tracks[media.rtp.muxId]["participant_id"]
        for media in SessionDescription.parse(listener.offers[-1]["sdp"]).media
        if media.kind == "audio" and media.rtp.muxId in tracks and media.ssrc
    }
    counted: Counter[str] = Counter()
    for transceiver in listener.subscriber.getTransceivers():
        if transceiver.kind == "audio":
            tap_rtp_packets(
                transceiver.receiver,
                lambda packet, data: counted.update([speaker_of.get(packet.ssrc, "?")]),
            )
    return counted


async def test_a_participant_who_chooses_audio_only_gets_no_video_until_it_asks_again(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await doctor.publish()
    await patient.join()
    await wait_until(lambda: patient.frames_from("doctor", "camera") > 5)

    await doctor.consult.set_audio_only("patient", True)
    assert patient.last_event("receive_mode") == {
        "audio_only": True,
        "reason": "chosen",
        "paused": [],
    }
    await asyncio.sleep(0.3)
    video = patient.frames_from("doctor", "camera")
    audio = patient.frames_from("doctor", "microphone")
    await wait_until(lambda: patient.frames_from("doctor", "microphone") > audio + 25)
    assert patient.frames_from("doctor", "camera") == video

    await doctor.consult.set_audio_only("patient", False)
    assert patient.last_event("receive_mode") == {
        "audio_only": False,
        "reason": None,
        "paused": [],
    }
    await wait_until(lambda: patient.frames_from("doctor", "camera") > video + 5)


def audio_only_seconds(reason: str) -> float:
    """The process's ``teleconsult_audio_only_seconds_total`` for one reason."""
    sample = REGISTRY.get_sample_value("teleconsult_audio_only_seconds_total", {"reason": reason})
    return sample or 0.0


def opus_format(sdp: str) -> str:
    """The format parameters of Opus in an SDP."""
    payload_type = re.search(r"a=rtpmap:(\d+) opus/48000", sdp, re.IGNORECASE)
    assert payload_type is not None
    found = re.search(rf"a=fmtp:{payload_type.group(1)} (\S+)", sdp)
    return found.group(1) if found else ""


async def test_opus_in_band_fec_is_negotiated_both_ways(
    participants: Callable[[str], TestParticipant],
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    answer = await doctor.publish()
    await patient.join()
    await wait_until(lambda: bool(patient.offers))
    assert "useinbandfec=1" in opus_format(answer).split(";")  # so the publisher sends FEC
    # and its voice at a rate that leaves a 60 kbit/s link room beside it
    assert f"maxaveragebitrate={VOICE_BITRATE}" in opus_format(answer).split(";")
    assert "useinbandfec=1" in opus_format(patient.offers[-1]["sdp"]).split(";")
