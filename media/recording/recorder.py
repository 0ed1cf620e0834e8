"""The recorder of one consult: every published track muxed to its own file as it arrives.

Like Janus's recorder, the live path only queues the encoded frames the SFU already forwards;
a writer thread muxes them with PyAV (nothing is decoded or encoded) into Matroska/WebM,
closing a cluster at least every second and flushing it to the file at once. A process killed
with SIGKILL therefore leaves files that play up to its last second or so; the manifest is
rewritten as tracks start, and recovery (:mod:`media.recording.recovery`) completes it.
"""

from __future__ import annotations

import asyncio
import fcntl
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import av
from aiortc import RTCRtpCodecParameters

from ..codecs import CodecStrategy, RecordingFormat, codec_for
from ..publisher import PublishedTrack
from .manifest import Manifest, TrackEntry, complete_track

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
#: Seconds a track's file waits for the keyframe it asked for before it asks again.
KEYFRAME_ASKED_AGAIN_AFTER = 1.0
#: Frames queued for the writer thread, all tracks together, before frames are dropped.
QUEUE_FRAMES = 2000
MILLISECONDS = fractions.Fraction(1, 1000)
#: Close a Matroska cluster at least every second and flush it to the file at once.
CONTAINER_OPTIONS = {"cluster_time_limit": "1000", "flush_packets": "1"}


class TrackFile:
    """
    One track's file: encoded frames muxed into Matroska/WebM (used by the writer thread only).

    The file is created at the first keyframe, whose header gives the picture size.
    Timestamps are the RTP timestamps, made relative to that first frame, in milliseconds.

    :param path: Where to write.
    :param entry: The track's manifest entry (its size and start offset are filled here).
    :param codec: The track's codec.
    :param storage: How that codec is stored (its :attr:`CodecStrategy.recording`).
    :param clock_rate: The codec's RTP clock rate.
    :param started: The monotonic time the recording started.
    """

    def __init__(
        self,
        path: Path,
        entry: TrackEntry,
        codec: CodecStrategy,
        storage: RecordingFormat,
        clock_rate: int,
        started: float,
    ) -> None:
        self.path = path
        self.entry = entry
        self._codec = codec
        self._format = storage
        self._clock_rate = clock_rate
        self._started = started
        self._container: Any = None
        self._stream: Any = None
        self._first_timestamp = 0
        self._last_pts = -1
        self.frames = 0
        self.skipped = 0

    @property
    def opened(self) -> bool:
        """True once the first keyframe created the file."""
        return self._container is not None

    def write(self, data: bytes, timestamp: int, keyframe: bool, arrival: float) -> bool:
        """
        Mux one encoded frame.

        :param data: The encoded frame.
        :param timestamp: Its RTP timestamp (unwrapped).
        :param keyframe: Whether a decoder can start here.
        :param arrival: Its arrival time (monotonic seconds).
        :return: True when this frame created the file.
        """
        created = False
        if self._container is None:
            if not keyframe or not self._open(data):
                self.skipped += 1
                return False
            self._first_timestamp = timestamp
            self.entry.start_offset = round(max(arrival - self._started, 0.0), 3)
            created = True
        pts = (timestamp - self._first_timestamp) * 1000 // self._clock_rate
        if pts <= self._last_pts:
            self.skipped += 1  # a duplicate or reordered frame: Matroska needs rising times
            return created
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = MILLISECONDS
        packet.stream = self._stream
        if keyframe:
            packet.is_keyframe = True
        self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1
        return created

    def _open(self, keyframe: bytes) -> bool:
        options: dict[str, Any] = {}
        if self.entry.kind == "video":
            size = self._codec.picture_size(keyframe)
            if size is None:
                return False
            options["width"], options["height"] = size
            self.entry.width, self.entry.height = size
        container = av.open(
            str(self.path), "w", format=self._format.container, container_options=CONTAINER_OPTIONS
        )
        rate = self._clock_rate if self.entry.kind == "audio" else None
        self._stream = container.add_mux_stream(self._format.codec, rate=rate, **options)
        self._stream.time_base = MILLISECONDS
        self._container = container
        return True

    def close(self) -> None:
        """Write the file's index (cues) and close it."""
        if self._container is not None:
            self._container.close()
            self._container = None


class _Command:
    """Work for the writer thread other than a frame: run `action`, then set `done`."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.done = threading.Event()


class RecordingWriter(threading.Thread):
    """
    The thread that muxes a recording's frames, in arrival order, and keeps its manifest.

    :param directory: The recording's folder.
    :param manifest: The manifest, owned by this thread once started.
    """

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        super().__init__(name=f"recorder-{manifest.recording_id[:8]}", daemon=True)
        self.directory = directory
        self.manifest = manifest
        self.queue: queue.Queue[tuple[TrackFile, bytes, int, bool, float] | _Command | None] = (
            queue.Queue(QUEUE_FRAMES)
        )
        self.failed: set[str] = set()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, _Command):
                try:
                    item.action()
                finally:
                    item.done.set()
                continue
            track, data, timestamp, keyframe, arrival = item
            if track.entry.name in self.failed:
                continue
            try:
                if track.write(data, timestamp, keyframe, arrival):
                    self.manifest.save(self.directory)  # the track's start offset is known
            except (av.error.FFmpegError, OSError):
                # One broken track must not stop the others: stop writing it, keep its file.
                logger.exception("recording track failed", extra={"file": track.entry.name})
                self.failed.add(track.entry.name)

    def run_command(self, action: Callable[[], None]) -> _Command:
        """
        Run `action` on the writer thread after the frames queued so far.

        :param action: What to do.
        :return: The command; its ``done`` event is set once it ran.
        """
        command = _Command(action)
        self.queue.put(command)
        return command


class TrackRecording:
    """
    Records one published track: its sink queues frames for the writer thread.

    :param published: The published track.
    :param file: Its file.
    :param writer: The recording's writer thread.
    """

    def __init__(self, published: PublishedTrack, file: TrackFile, writer: RecordingWriter) -> None:
        self.published = published
        self.file = file
        self.dropped = 0
        self._queue = writer.queue
        self._waiting_keyframe = True
        self._monotonic = time.monotonic
        self._asked_at = self._monotonic()
        # One bound method, kept: the track's receiver recognises a sink by identity.
        self._sink = self.sink

    def sink(
        self, codec: RTCRtpCodecParameters, data: bytes, timestamp: int, keyframe: bool
    ) -> None:
        """
        Queue one forwarded frame (on the event loop, per frame: kept minimal).

        :param codec: The frame's codec.
        :param data: The encoded frame.
        :param timestamp: Its RTP timestamp.
        :param keyframe: Whether a decoder can start here.
        """
        if self._waiting_keyframe:
            if not keyframe:
                now = self._monotonic()
                if now - self._asked_at >= KEYFRAME_ASKED_AGAIN_AFTER:
                    # The keyframe asked for was lost, or the request was: ask again.
                    self._asked_at = now
                    self.published.receiver.request_keyframe()
                return
            self._waiting_keyframe = False
        try:
            self._queue.put_nowait((self.file, data, timestamp, keyframe, self._monotonic()))
        except queue.Full:
            # The disk is slower than the media: skip to the next keyframe rather than block.
            self.dropped += 1
            self._waiting_keyframe = True
            self._asked_at = self._monotonic()
            self.published.receiver.request_keyframe()

    def attach(self) -> None:
        """Start receiving the track's frames, from a keyframe asked for now."""
        self.published.receiver.add_sink(self._sink)
        self._asked_at = self._monotonic()
        self.published.receiver.request_keyframe()

    def detach(self) -> None:
        """Stop receiving the track's frames."""
        self.published.receiver.remove_sink(self._sink)


def utc_iso(moment: datetime | None = None) -> str:
    """
    An ISO-8601 UTC timestamp.

    :param moment: The time; now when omitted.
    """
    return (moment or datetime.now(UTC)).isoformat()


class RecordingLock:
    """
    An exclusive lock on a recording's folder, held while it records.

    The kernel releases it when the process dies, however it dies: a folder whose manifest
    says ``recording`` but whose lock can be taken belongs to a crashed recorder.

    :param directory: The recording's folder.
    """

    def __init__(self, directory: Path) -> None:
        self._path = directory / LOCK_NAME
        self._handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        """Release the lock."""
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ConsultRecorder:
    """
    Records every track of one consult, each into its own file, plus a manifest.

    :param directory: The recording's folder (created).
    :param manifest: Its manifest: consult, participants, consent, who started it.
    """

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        self.directory = directory
        self.manifest = manifest
        self.started = time.monotonic()
        self.finished: asyncio.Future[Manifest] = asyncio.get_running_loop().create_future()
        self._writer = RecordingWriter(directory, manifest)
        self._lock = RecordingLock(directory)
        self._tracks: dict[int, TrackRecording] = {}
        self._counts: dict[str, int] = {}
        self._stopping = False

    @property
    def recording_id(self) -> str:
        """The recording's id."""
        return self.manifest.recording_id

    def start(self) -> None:
        """Create the folder, take its lock, write the manifest and start the writer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._lock.acquire():
            raise RuntimeError(f"recording {self.recording_id} is locked by another process")
        self.manifest.status = "recording"
        self.manifest.started_at = self.manifest.started_at or utc_iso()
        self.manifest.save(self.directory)
        self._writer.start()
        logger.info("recording started", extra={"recording_id": self.recording_id})

    def frames_written(self, participant_id: str, source: str) -> int:
        """
        Frames written so far to the open file of one participant's source (0 when none is open).

        :param participant_id: The publishing participant.
        :param source: ``camera``, ``microphone`` or ``screen``.
        """
        return sum(
            recording.file.frames
            for recording in self._tracks.values()
            if recording.published.participant_id == participant_id
            and recording.published.source == source
        )

    def sync(self, published: Iterable[PublishedTrack]) -> None:
        """
        Record exactly the tracks published now: start new ones, close withdrawn ones.

        :param published: Every track the consult's participants publish.
        """
        if self._stopping:
            return
        current = {id(track): track for track in published}
        for key in [key for key in self._tracks if key not in current]:
            self._close(self._tracks.pop(key))
        for key, track in current.items():
            if key not in self._tracks:
                recording = self._open(track)
                if recording is not None:
                    self._tracks[key] = recording

    def _open(self, published: PublishedTrack) -> TrackRecording | None:
        codec = published.receiver.codec
        strategy = codec_for(codec.mimeType)
        track_format = strategy.recording
        if track_format is None:
            logger.warning("codec not recorded", extra={"codec": codec.mimeType})
            return None
        stem = f"{published.participant_id}-{published.source}"
        count = self._counts[stem] = self._counts.get(stem, 0) + 1
        entry = TrackEntry(
            name=f"{stem}-{count}.{track_format.extension}",
            participant_id=published.participant_id,
            source=published.source,
            kind=published.kind,
            codec=codec.mimeType,
        )
        file = TrackFile(
            self.directory / entry.name,
            entry,
            strategy,
            track_format,
            codec.clockRate,
            self.started,
        )

        def add_entry() -> None:
            self.manifest.tracks.append(entry)
            self.manifest.save(self.directory)

        self._writer.run_command(add_entry)
        recording = TrackRecording(published, file, self._writer)
        recording.attach()
        return recording

    def _close(self, recording: TrackRecording) -> None:
        recording.detach()
        self._writer.run_command(recording.file.close)

    async def stop(self) -> Manifest:
        """
        Stop recording: close every file, complete and write the manifest, release the lock.

        :return: The complete manifest (durations, sizes and SHA-256 of every file).
        """
        if self._stopping:
            return await self.finished
        self._stopping = True
        for recording in self._tracks.values():
            recording.detach()
        files = [recording.file for recording in self._tracks.values()]
        self._tracks = {}

        def finish() -> None:
            for file in files:
                file.close()
            self.manifest.stopped_at = utc_iso()
            for track in self.manifest.tracks:
                complete_track(self.directory, track)
            self.manifest.status = "complete"
            self.manifest.save(self.directory)

        try:
            command = self._writer.run_command(finish)
            await asyncio.to_thread(command.done.wait)
            self._writer.queue.put(None)
            await asyncio.to_thread(self._writer.join)
        finally:
            self._lock.release()
        remove_lock(self.directory)
        logger.info(
            "recording stopped",
            extra={"recording_id": self.recording_id, "tracks": len(self.manifest.tracks)},
        )
        if not self.finished.done():
            self.finished.set_result(self.manifest)
        return self.manifest


def remove_lock(directory: Path) -> None:
    """
    Remove a finished recording's lock file.

    :param directory: The recording's folder.
    """
    try:
        os.unlink(directory / LOCK_NAME)
    except FileNotFoundError:
        pass
