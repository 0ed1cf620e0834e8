"""The manifest of one recording: what was recorded, when, and the hash of every file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
HASH_CHUNK = 1024 * 1024


@dataclass
class TrackEntry:
    """
    One recorded track: one file.

    :param name: The file name inside the recording's folder.
    :param participant_id: Who published the track.
    :param source: ``camera``, ``microphone`` or ``screen``.
    :param kind: ``audio`` or ``video``.
    :param codec: The RTP codec, e.g. ``video/VP8``.
    :param start_offset: Seconds from the start of the recording to the track's first frame.
    :param duration: Seconds of media in the file.
    :param frames: Encoded frames (packets) in the file.
    :param bytes: The file's size.
    :param sha256: The file's SHA-256, hex.
    :param width: The picture width (video).
    :param height: The picture height (video).
    """

    name: str
    participant_id: str
    source: str
    kind: str
    codec: str
    start_offset: float | None = None
    duration: float | None = None
    frames: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class Manifest:
    """
    The manifest of a recording, kept as ``manifest.json`` in its folder.

    It is written when the recording starts, rewritten when a track starts, and completed
    (durations, sizes, hashes) when the recording stops, or by recovery after a crash.

    :param recording_id: The recording.
    :param consult: The consult: ``{id, kind, hospital, title}``.
    :param status: ``recording``, ``complete`` or ``recovered``.
    :param started_at: ISO-8601 UTC time of the start.
    :param stopped_at: ISO-8601 UTC time of the stop (or of the recovery).
    :param started_by: ``{sub, name}`` of the host who started it.
    :param consent: How consent was given: ``{method, by, at, reason?}``.
    :param participants: ``[{participant_id, sub, name, role}]``.
    :param tracks: The recorded tracks.
    """

    recording_id: str
    consult: dict[str, Any]
    status: str = "recording"
    started_at: str = ""
    stopped_at: str | None = None
    started_by: dict[str, str] = field(default_factory=dict)
    consent: dict[str, Any] = field(default_factory=dict)
    participants: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[TrackEntry] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds from the start to the end of the last track."""
        ends = [
            (t.start_offset or 0.0) + (t.duration or 0.0)
            for t in self.tracks
            if t.duration is not None
        ]
        return max(ends, default=0.0)

    @property
    def bytes(self) -> int:
        """The size of every track file together."""
        return sum(t.bytes or 0 for t in self.tracks)

    def track(self, name: str) -> TrackEntry | None:
        """The track stored in file `name`, if any."""
        return next((t for t in self.tracks if t.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the totals."""
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        data["bytes"] = self.bytes
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """
        Read a manifest back from its JSON form.

        :param data: What :meth:`as_dict` produced.
        """
        values = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        values["tracks"] = [TrackEntry(**track) for track in data.get("tracks", [])]
        return cls(**values)

    def save(self, directory: Path) -> None:
        """
        Write ``manifest.json`` atomically: a crash leaves the old or the new version.

        :param directory: The recording's folder.
        """
        target = directory / MANIFEST_NAME
        temporary = directory / f".{MANIFEST_NAME}.tmp"
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(self.as_dict(), handle, indent=2, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """
        Read ``manifest.json`` of a recording's folder.

        :param directory: The recording's folder.
        :raises FileNotFoundError: when there is none.
        """
        with (directory / MANIFEST_NAME).open(encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def sha256_file(path: Path) -> str:
    """
    The SHA-256 of a file, hex.

    :param path: The file.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Probe:
    """What reading a track file back found: its media duration and its frames."""

    duration: float
    frames: int


def probe_track(path: Path) -> Probe:
    """
    Read a track file with PyAV, packet by packet (nothing is decoded).

    Works on files cut short by a crash: reading stops at the last complete packet.

    :param path: A Matroska or WebM file with one stream.
    """
    frames = 0
    first: float | None = None
    last = 0.0
    last_duration = 0.0
    try:
        with av.open(str(path)) as container:
            stream = container.streams[0]
            time_base = stream.time_base
            with contextlib.suppress(av.error.InvalidDataError, av.error.EOFError):
                for packet in container.demux(stream):
                    if packet.pts is None or time_base is None:
                        continue
                    start = float(packet.pts * time_base)
                    first = start if first is None else min(first, start)
                    last = max(last, start)
                    last_duration = float((packet.duration or 0) * time_base)
                    frames += 1
    except (av.error.InvalidDataError, av.error.EOFError, IndexError):
        logger.warning("recording file unreadable", extra={"file": path.name})
        return Probe(0.0, 0)
    if first is None:
        return Probe(0.0, 0)
    if not last_duration and frames > 1:
        # Matroska blocks rarely carry a duration: the last frame lasts as long as the average.
        last_duration = (last - first) / (frames - 1)
    return Probe(round(last + last_duration - first, 3), frames)


def complete_track(directory: Path, track: TrackEntry) -> None:
    """
    Fill a track's duration, frame count, size and SHA-256 from its file.

    :param directory: The recording's folder.
    :param track: The track; a missing file (nothing was ever written) counts as empty.
    """
    path = directory / track.name
    if not path.exists():
        track.duration, track.frames, track.bytes, track.sha256 = 0.0, 0, 0, None
        return
    probe = probe_track(path)
    track.duration, track.frames = probe.duration, probe.frames
    track.bytes = path.stat().st_size
    track.sha256 = sha256_file(path)
