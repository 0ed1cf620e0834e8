"""The review rendition: one small file with every video track side by side and the audio mixed.

It runs offline, after the recording stopped, so it may decode and encode (unlike the
recorder); it reads the original track files and never changes them.
"""

from __future__ import annotations

import contextlib
import fractions
import heapq
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import av.filter

from .manifest import Manifest, TrackEntry

logger = logging.getLogger(__name__)

RENDITION_NAME = "review.webm"
TILE_WIDTH, TILE_HEIGHT = 320, 240
COLUMNS = 3
FPS = 10
VIDEO_BITRATE = 300_000
AUDIO_RATE = 48000
AUDIO_BITRATE = 32_000
#: Share of the progress given to mixing the audio (the video takes the rest).
AUDIO_SHARE = 0.2
BLACK = (16, 128, 128)

Progress = Callable[[float], None]


def _decoded(path: Path, offset: float, kind: str) -> Iterator[tuple[float, Any]]:
    """Decoded frames of a track file with their time from the start of the recording."""
    with av.open(str(path)) as container:
        stream = container.streams[0]
        with contextlib.suppress(av.error.InvalidDataError, av.error.EOFError):
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                yield offset + float(frame.time), frame


def _mix_audio(
    directory: Path, tracks: list[TrackEntry], duration: float, progress: Progress
) -> list[av.AudioFrame]:
    """Every audio track decoded, placed at its offset and mixed into mono frames."""
    graph = av.filter.Graph()
    sources = []
    mixer = graph.add("amix", f"inputs={len(tracks)}:duration=longest:normalize=0")
    for index, _ in enumerate(tracks):
        source = graph.add_abuffer(
            format="fltp",
            sample_rate=AUDIO_RATE,
            layout="mono",
            time_base=fractions.Fraction(1, AUDIO_RATE),
        )
        # Silence before a late track and in its gaps (a muted microphone), from the pts.
        pad = graph.add("aresample", "async=1:first_pts=0")
        source.link_to(pad)
        pad.link_to(mixer, 0, index)
        sources.append(source)
    formatted = graph.add(
        "aformat", f"sample_fmts=s16:channel_layouts=mono:sample_rates={AUDIO_RATE}"
    )
    mixer.link_to(formatted)
    sink = graph.add("abuffersink")
    formatted.link_to(sink)
    graph.configure()

    mixed: list[av.AudioFrame] = []

    def drain() -> None:
        while True:
            try:
                mixed.append(sink.pull())
            except (BlockingIOError, av.error.EOFError):
                return

    def timed(index: int, track: TrackEntry) -> Iterator[tuple[float, int, Any]]:
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        for at, frame in _decoded(directory / track.name, track.start_offset or 0.0, "audio"):
            for converted in resampler.resample(frame):
                converted.pts = round(at * AUDIO_RATE)
                converted.time_base = fractions.Fraction(1, AUDIO_RATE)
                yield at, index, converted
                at += converted.samples / AUDIO_RATE

    streams = [timed(index, track) for index, track in enumerate(tracks)]
    for at, index, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        sources[index].push(frame)
        drain()
        if duration:
            progress(min(at / duration, 1.0) * AUDIO_SHARE)
    for source in sources:
        source.push(None)
    drain()
    return mixed


class _Tile:
    """One video track's picture at the rendition's current time."""

    def __init__(self, directory: Path, track: TrackEntry) -> None:
        self._frames = _decoded(directory / track.name, track.start_offset or 0.0, "video")
        self._end = (track.start_offset or 0.0) + (track.duration or 0.0)
        self._next: tuple[float, Any] | None = next(self._frames, None)
        self.planes: list[bytes] | None = None

    def advance(self, at: float) -> None:
        """Move to the last frame shown at `at` (black before the first and after the end)."""
        frame = None
        while self._next is not None and self._next[0] <= at:
            frame = self._next[1]
            self._next = next(self._frames, None)
        if frame is not None:
            small = frame.reformat(width=TILE_WIDTH, height=TILE_HEIGHT, format="yuv420p")
            self.planes = [
                _packed(bytes(plane), plane.line_size, plane.width, plane.height)
                for plane in small.planes
            ]
        if at > self._end + 1.0 / FPS:
            self.planes = None


def _packed(data: bytes, line_size: int, width: int, height: int) -> bytes:
    if line_size == width:
        return data[: width * height]
    return b"".join(data[row * line_size : row * line_size + width] for row in range(height))


def _compose(frame: av.VideoFrame, tiles: list[_Tile], columns: int) -> None:
    for index, plane in enumerate(frame.planes):
        scale = 1 if index == 0 else 2
        tile_width, tile_height = TILE_WIDTH // scale, TILE_HEIGHT // scale
        buffer = bytearray([BLACK[index]]) * plane.buffer_size
        for position, tile in enumerate(tiles):
            if tile.planes is None:
                continue
            source = tile.planes[index]
            left = (position % columns) * tile_width
            top = (position // columns) * tile_height
            for row in range(tile_height):
                start = (top + row) * plane.line_size + left
                buffer[start : start + tile_width] = source[
                    row * tile_width : (row + 1) * tile_width
                ]
        plane.update(bytes(buffer))


def make_rendition(directory: Path, manifest: Manifest, progress: Progress) -> str:
    """
    Write the review rendition of a recording into its folder.

    :param directory: The recording's folder.
    :param manifest: Its complete manifest.
    :param progress: Called with the share done, 0.0 to 1.0.
    :return: The rendition's file name.
    """
    videos = [t for t in manifest.tracks if t.kind == "video" and t.frames]
    audios = [t for t in manifest.tracks if t.kind == "audio" and t.frames]
    duration = manifest.duration
    target = directory / RENDITION_NAME
    temporary = directory / f".{RENDITION_NAME}.tmp"
    mixed = _mix_audio(directory, audios, duration, progress) if audios else []
    progress(AUDIO_SHARE)

    output = av.open(str(temporary), "w", format="webm")
    video_stream = None
    columns = min(len(videos), COLUMNS)
    if videos:
        rows = math.ceil(len(videos) / columns)
        video_stream = output.add_stream("libvpx", rate=FPS)
        video_stream.width, video_stream.height = TILE_WIDTH * columns, TILE_HEIGHT * rows
        video_stream.pix_fmt = "yuv420p"
        video_stream.bit_rate = VIDEO_BITRATE
        video_stream.options = {"deadline": "realtime", "cpu-used": "8"}
    audio_stream = None
    if mixed:
        audio_stream = output.add_stream("libopus", rate=AUDIO_RATE)
        audio_stream.layout = "mono"
        audio_stream.bit_rate = AUDIO_BITRATE
    audio_frames = iter(mixed)
    pending_audio = next(audio_frames, None)

    def mux_audio_until(at: float | None) -> None:
        nonlocal pending_audio
        while pending_audio is not None and audio_stream is not None:
            if at is not None and pending_audio.time is not None and pending_audio.time > at:
                return
            output.mux(audio_stream.encode(pending_audio))
            pending_audio = next(audio_frames, None)

    try:
        if video_stream is not None:
            tiles = [_Tile(directory, track) for track in videos]
            for index in range(max(1, math.ceil(duration * FPS))):
                at = index / FPS
                for tile in tiles:
                    tile.advance(at)
                frame = av.VideoFrame(video_stream.width, video_stream.height, "yuv420p")
                _compose(frame, tiles, columns)
                frame.pts = index
                frame.time_base = fractions.Fraction(1, FPS)
                output.mux(video_stream.encode(frame))
                mux_audio_until(at)
                if duration:
                    progress(AUDIO_SHARE + (1 - AUDIO_SHARE) * min(at / duration, 1.0))
            output.mux(video_stream.encode(None))
        mux_audio_until(None)
        if audio_stream is not None:
            output.mux(audio_stream.encode(None))
    finally:
        output.close()
    os.replace(temporary, target)
    progress(1.0)
    logger.info("review rendition written", extra={"recording_id": manifest.recording_id})
    return RENDITION_NAME
