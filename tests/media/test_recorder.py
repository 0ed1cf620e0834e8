"""The recorder writes each forwarded track to its own file, without transcoding."""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from aiortc import RTCRtpCodecParameters, RTCSessionDescription, VideoStreamTrack
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack

from media import ConsultMedia
from media.errors import MediaError
from media.publisher import PublishedTrack
from media.receiver import KeyframeRequester, TrackReceiver
from media.recording import Manifest
from media.recording.manifest import probe_track
from media.recording.recorder import ConsultRecorder, RecordingLock
from recordings.rendition import make_rendition

from .clients import MovingBarTrack, TestParticipant, wait_until
from .conftest import BOTH_RECEIVE_PATHS

RECORD_SECONDS = 3.0


def new_manifest(recording_id: str = "rec-1") -> Manifest:
    return Manifest(
        recording_id=recording_id,
        consult={"id": "consult-1", "kind": "visit", "hospital": "h-east", "title": "Follow-up"},
        started_by={"sub": "dr-wang", "name": "Dr. Wang Fang"},
        consent={"method": "patient", "by": "pt-li"},
    )


def decoded_frames(path: Path) -> tuple[int, float, str]:
    """Decode a file: frames, the time of the last one, the codec name."""
    count, last = 0, 0.0
    with av.open(str(path)) as container:
        stream = container.streams[0]
        for frame in container.decode(stream):
            count += 1
            last = float(frame.time or 0.0)
        return count, last, stream.codec_context.name


async def record(
    consult: ConsultMedia, folder: Path, seconds: float, manifest: Manifest | None = None
) -> Manifest:
    consult.start_recording(folder, manifest or new_manifest())
    await asyncio.sleep(seconds)
    stopped = await consult.stop_recording()
    assert stopped is not None
    return stopped


@BOTH_RECEIVE_PATHS
async def test_every_track_of_a_visit_is_recorded_to_a_playable_file(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    for person in (doctor, patient):
        await person.join()
        await person.publish()
    await wait_until(lambda: patient.frames_from("doctor", "camera") >= 10)

    started = time.monotonic()
    manifest = await record(consult, tmp_path / "rec-1", RECORD_SECONDS)
    wall = time.monotonic() - started

    assert manifest.status == "complete"
    assert sorted((t.participant_id, t.source) for t in manifest.tracks) == [
        ("doctor", "camera"),
        ("doctor", "microphone"),
        ("patient", "camera"),
        ("patient", "microphone"),
    ]
    for track in manifest.tracks:
        path = tmp_path / "rec-1" / track.name
        assert track.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert track.bytes == path.stat().st_size
        frames, last, codec = decoded_frames(path)
        assert codec == ("vp8" if track.kind == "video" else "opus")
        assert track.duration is not None and track.start_offset is not None
        # No longer than it ran (a duration counts its last frame whole: 20 ms of audio, a
        # video frame interval), never more frames than were sent, and the file's frames reach
        # the manifest's end. How many frames a loaded machine delivers is not asserted.
        assert 0 < track.duration <= wall + 0.1, track
        most = 30 if track.kind == "video" else 50
        assert 0 < frames <= most * (track.duration + 0.1), (track, frames)
        assert last >= track.duration - 0.2
        if track.kind == "video":
            assert (track.width, track.height) == (160, 120)
    written = json.loads((tmp_path / "rec-1" / "manifest.json").read_text())
    assert written["status"] == "complete"
    assert written["tracks"][0]["sha256"] == manifest.tracks[0].sha256


class SharedScreen(VideoStreamTrack):
    """A shared screen: a white page, wider than the camera (320x180)."""

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(320, 180, "yuv420p")
        for plane, value in zip(frame.planes, (235, 128, 128), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, fractions.Fraction(time_base)
        return frame


async def test_a_shared_screen_is_recorded_to_its_own_file(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await patient.join()
    assert doctor.media is not None
    # Camera, screen and microphone in one offer, the screen named as the web client does.
    doctor.publisher.addTransceiver(MovingBarTrack(), direction="sendonly")
    screen = doctor.publisher.addTransceiver(SharedScreen(), direction="sendonly")
    doctor.publisher.addTrack(AudioStreamTrack())
    await doctor.publisher.setLocalDescription(await doctor.publisher.createOffer())
    assert screen.mid is not None
    answer = await doctor.media.handle_publisher_offer(
        doctor.publisher.localDescription.sdp, {screen.mid: "screen"}
    )
    await doctor.publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await wait_until(lambda: patient.frames_from("doctor", "screen") >= 10)

    manifest = await record(consult, tmp_path / "rec-1", 2.0)

    by_source = {t.source: t for t in manifest.tracks}
    assert sorted(by_source) == ["camera", "microphone", "screen"]
    shared, camera = by_source["screen"], by_source["camera"]
    assert shared.name != camera.name and "screen" in shared.name
    assert (shared.kind, shared.codec, shared.participant_id) == ("video", "video/VP8", "doctor")
    assert (shared.width, shared.height) == (320, 180)
    assert (camera.width, camera.height) == (160, 120)
    path = tmp_path / "rec-1" / shared.name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == shared.sha256
    frames, last, codec = decoded_frames(path)
    assert codec == "vp8" and shared.duration is not None
    assert frames >= 0.6 * 30 * shared.duration and last >= shared.duration - 0.2
    with av.open(str(path)) as container:
        picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (320, 180)


async def test_h264_camera_is_recorded_as_h264_in_matroska(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    await doctor.join()
    await patient.join()
    await doctor.publish(video_codec="video/H264")
    await wait_until(lambda: patient.frames_from("doctor", "camera") >= 10)

    manifest = await record(consult, tmp_path / "rec-1", 2.0)

    camera = next(t for t in manifest.tracks if t.source == "camera")
    assert camera.name.endswith(".mkv") and camera.codec == "video/H264"
    frames, _, codec = decoded_frames(tmp_path / "rec-1" / camera.name)
    assert codec == "h264" and frames >= 20
    assert (camera.width, camera.height) == (160, 120)


async def test_a_participant_who_joins_during_the_recording_is_recorded_too(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor = participants("doctor")
    await doctor.join()
    await doctor.publish()
    consult.start_recording(tmp_path / "rec-1", new_manifest())
    await asyncio.sleep(1.0)
    patient = participants("patient")
    await patient.join()
    await patient.publish()
    await asyncio.sleep(2.0)
    manifest = await consult.stop_recording()

    assert manifest is not None
    late = next(t for t in manifest.tracks if t.participant_id == "patient" and t.kind == "video")
    early = next(t for t in manifest.tracks if t.participant_id == "doctor" and t.kind == "video")
    assert late.start_offset is not None and early.start_offset is not None
    assert late.start_offset > early.start_offset + 0.5
    assert late.frames and late.frames >= 20


@BOTH_RECEIVE_PATHS
async def test_a_participant_leaving_closes_their_files_and_the_recording_goes_on(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    for person in (doctor, patient):
        await person.join()
        await person.publish()
    await wait_until(lambda: patient.frames_from("doctor", "camera") >= 10)
    await wait_until(lambda: doctor.frames_from("patient", "camera") >= 10)
    recorder = consult.start_recording(tmp_path / "rec-1", new_manifest())
    await wait_until(lambda: recorder.frames_written("patient", "camera") >= 10)
    await consult.leave("patient")
    # The doctor's camera is recorded on after the patient left.
    written = recorder.frames_written("doctor", "camera")
    await wait_until(lambda: recorder.frames_written("doctor", "camera") >= written + 10)
    manifest = await consult.stop_recording()

    assert manifest is not None
    patient_video = next(t for t in manifest.tracks if t.participant_id == "patient")
    doctor_video = next(t for t in manifest.tracks if t.participant_id == "doctor")
    assert patient_video.duration is not None and doctor_video.duration is not None
    # The patient's video ends when they leave; the doctor's goes on to the stop.
    assert patient_video.start_offset is not None and doctor_video.start_offset is not None
    patient_end = patient_video.start_offset + patient_video.duration
    doctor_end = doctor_video.start_offset + doctor_video.duration
    assert patient_end < doctor_end, (patient_video, doctor_video)


async def test_a_second_recording_of_the_same_consult_is_refused_while_one_runs(
    consult: ConsultMedia, tmp_path: Path
) -> None:
    consult.start_recording(tmp_path / "rec-1", new_manifest())
    with pytest.raises(MediaError) as refused:
        consult.start_recording(tmp_path / "rec-2", new_manifest("rec-2"))
    assert refused.value.code == "already_recording"
    await consult.stop_recording()


async def test_a_recording_folder_is_locked_while_recording(tmp_path: Path) -> None:
    recorder = ConsultRecorder(tmp_path / "rec-1", new_manifest())
    recorder.start()
    assert not RecordingLock(tmp_path / "rec-1").acquire()
    await recorder.stop()
    lock = RecordingLock(tmp_path / "rec-1")
    assert lock.acquire()
    lock.release()


def test_probe_of_an_empty_file_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "broken.webm"
    path.write_bytes(b"not a recording")
    probe = probe_track(path)
    assert (probe.duration, probe.frames) == (0.0, 0)


async def test_the_review_rendition_shows_both_cameras_side_by_side_with_the_audio_mixed(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor, patient = participants("doctor"), participants("patient")
    for person in (doctor, patient):
        await person.join()
        await person.publish()
    manifest = await record(consult, tmp_path / "rec-1", 2.0)
    hashes = {t.name: t.sha256 for t in manifest.tracks}
    progress: list[float] = []

    name = await asyncio.to_thread(make_rendition, tmp_path / "rec-1", manifest, progress.append)

    with av.open(str(tmp_path / "rec-1" / name)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 240)
        frames = sum(1 for _ in container.decode(video))
    assert frames >= 0.8 * manifest.duration * 10
    assert audio.codec_context.name == "opus"
    assert progress[-1] == 1.0 and progress == sorted(progress)
    for track in manifest.tracks:
        path = tmp_path / "rec-1" / track.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashes[track.name]


async def test_nothing_is_written_after_the_stop(
    consult: ConsultMedia, participants: Callable[[str], TestParticipant], tmp_path: Path
) -> None:
    doctor = participants("doctor")
    await doctor.join()
    await doctor.publish()
    manifest = await record(consult, tmp_path / "rec-1", 1.5)
    await asyncio.sleep(1.0)

    for track in manifest.tracks:
        path = tmp_path / "rec-1" / track.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == track.sha256


async def test_a_file_waiting_for_its_first_keyframe_asks_again_until_one_comes(
    tmp_path: Path,
) -> None:
    asked: list[float] = []

    async def picture_loss() -> bool:
        asked.append(time.monotonic())
        return True

    codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    receiver = TrackReceiver(codec, KeyframeRequester(picture_loss, interval=0.05))
    recorder = ConsultRecorder(tmp_path / "rec-1", new_manifest())
    recorder.start()
    recorder.sync([PublishedTrack("patient", "0", "camera", receiver)])
    try:
        # 2.5 s of frames a file cannot start with: the keyframe asked for never came.
        started, timestamp = time.monotonic(), 0
        while time.monotonic() - started < 2.5:
            receiver.on_frame(codec, JitterFrame(b"\x01" + bytes(20), timestamp))
            timestamp += 3000
            await asyncio.sleep(0.033)
        assert recorder.frames_written("patient", "camera") == 0
        assert len(asked) >= 3, asked  # when the file opened, then about once a second
    finally:
        await recorder.stop()
