"""The review rendition: every camera side by side, the microphones mixed, in bounded memory."""

from __future__ import annotations

import array
import fractions
import gc
import hashlib
import math
from pathlib import Path

import av

from media.recording import Manifest, TrackEntry
from media.recording.manifest import complete_track
from recordings.rendition import AUDIO_RATE, make_rendition

# --- a long consult, synthesised: the review rendition streams it -----------------------------

LONG_SECONDS = 60
#: One 20 ms Opus frame of a 1 kHz tone at a quarter of full scale (20 whole cycles: it loops).
TONE = b"".join(
    round(8192 * math.sin(2 * math.pi * 1000 * n / AUDIO_RATE)).to_bytes(2, "little", signed=True)
    for n in range(960)
)


def write_camera(path: Path, seconds: float, luma: int) -> None:
    """A 160x120 VP8 camera file of one flat grey, 10 frames a second."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for index in range(int(seconds * 10)):
            frame = av.VideoFrame(160, 120, "yuv420p")
            for plane, value in zip(frame.planes, (luma, 128, 128), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts, frame.time_base = index, fractions.Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_microphone(path: Path, seconds: float, muted: tuple[float, float] | None = None) -> None:
    """A mono Opus microphone file of the tone; nothing at all while `muted` (file times)."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=AUDIO_RATE)
        stream.layout = "mono"
        for index in range(int(seconds * 50)):
            if muted and muted[0] <= index / 50 < muted[1]:
                continue
            frame = av.AudioFrame(format="s16", layout="mono", samples=960)
            frame.planes[0].update(TONE)
            frame.sample_rate, frame.pts = AUDIO_RATE, index * 960
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def long_consult(folder: Path) -> Manifest:
    """
    A minute-long visit: the doctor throughout; the patient from 5 s on, microphone muted
    from 20 s to 40 s of the recording.
    """
    folder.mkdir()
    late = 5.0
    tracks = [
        TrackEntry("doctor-camera-1.webm", "doctor", "camera", "video", "video/VP8", 0.0),
        TrackEntry("doctor-microphone-1.webm", "doctor", "microphone", "audio", "audio/opus", 0.0),
        TrackEntry("patient-camera-1.webm", "patient", "camera", "video", "video/VP8", late),
        TrackEntry(
            "patient-microphone-1.webm", "patient", "microphone", "audio", "audio/opus", late
        ),
    ]
    write_camera(folder / tracks[0].name, LONG_SECONDS, luma=200)
    write_microphone(folder / tracks[1].name, LONG_SECONDS)
    write_camera(folder / tracks[2].name, LONG_SECONDS - late, luma=60)
    write_microphone(folder / tracks[3].name, LONG_SECONDS - late, muted=(20 - late, 40 - late))
    manifest = Manifest(
        recording_id="rec-long",
        consult={"id": "consult-1", "kind": "visit", "hospital": "h-east", "title": "Follow-up"},
        status="complete",
        tracks=tracks,
    )
    for track in tracks:
        complete_track(folder, track)
    return manifest


def audio_held_in_memory() -> float:
    """Seconds of decoded audio in live frames of this process."""
    frames = [o for o in gc.get_objects() if isinstance(o, av.AudioFrame)]
    return sum(frame.samples / (frame.sample_rate or AUDIO_RATE) for frame in frames)


def loudest(path: Path, start: float, end: float) -> float:
    """The peak of a file's audio between two times, as a share of full scale."""
    peak = 0.0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time < start:
                continue
            if frame.time >= end:
                break
            samples = array.array("f", bytes(frame.planes[0]))[: frame.samples]
            peak = max(peak, max(map(abs, samples)))
    return peak


def test_the_review_rendition_of_a_long_consult_streams_with_bounded_memory(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rec-long"
    manifest = long_consult(folder)
    hashes = {t.name: t.sha256 for t in manifest.tracks}
    progress: list[float] = []
    held: list[float] = []

    def note(share: float) -> None:
        # Look at what is in memory a few times along the way (a full look costs some ms).
        if not progress or int(share * 10) > int(progress[-1] * 10):
            held.append(audio_held_in_memory())
        progress.append(share)

    name = make_rendition(folder, manifest, note)

    assert len(held) >= 8
    # The whole mix decoded at once would be a minute of audio here, an hour in a long consult.
    assert max(held) < 1.0, held
    with av.open(str(folder / name)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 240)
        assert audio.codec_context.name == "opus"
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - LONG_SECONDS) < 0.5
        frames = sum(1 for _ in container.decode(video))
        container.seek(0)
        mixed = sum(frame.samples for frame in container.decode(audio)) / AUDIO_RATE
    assert abs(frames - LONG_SECONDS * 10) <= 2
    assert abs(mixed - LONG_SECONDS) < 0.1
    # The tones add up where both speak; the patient's muted microphone leaves the doctor
    # alone, and both are heard again once it is back.
    doctor_alone, both = 8192 / 32768, 2 * 8192 / 32768
    for start, end, expected in (
        (1, 4, doctor_alone),
        (10, 14, both),
        (25, 35, doctor_alone),
        (45, 55, both),
    ):
        assert abs(loudest(folder / name, start, end) - expected) < 0.05 * expected, (start, end)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    for track in manifest.tracks:
        path = folder / track.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashes[track.name]
