"""The review rendition: one small file with every video track side by side and the audio mixed.

It runs offline, after the recording stopped, so it may decode and encode (unlike the
recorder); it reads the original track files and never changes them. It streams: every track
is decoded, mixed and encoded in step with the rendition's clock, so the memory it needs is
the same for a five-minute consult as for a two-hour one.
"""

from __future__ import annotations

import contextlib
import fractions
import logging
import math
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, cast

import av
import av.filter

from media.recording import Manifest, TrackEntry

logger = logging.getLogger(__name__)

RENDITION_NAME = "review.webm"
TILE_WIDTH, TILE_HEIGHT = 320, 240
COLUMNS = 3
FPS = 10
VIDEO_BITRATE = 300_000
AUDIO_RATE = 48000
AUDIO_BITRATE = 32_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
#: Samples of silence per frame fed for a track that has none (before it starts, in its gaps).
SILENCE_SAMPLES = 960
BLACK = (16, 128, 128)

Progress = Callable[[float], None]


#: Decoded frames of one track, each with its time from the start of the recording.
Frames = Generator[tuple[float, Any], None, None]


def _decoded(path: Path, offset: float) -> Frames:
    """Decoded frames of a track file with their time from the start of the recording."""
    with av.open(str(path)) as container:
        stream = container.streams[0]
        with contextlib.suppress(av.error.InvalidDataError, av.error.EOFError):
            for frame in container.decode(stream):
                if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                    continue
                yield offset + float(frame.time), frame


class _AudioInput:
    """
    One audio track fed to the mix up to a given time: its samples where it has some,
    silence before it starts and in its gaps (a muted microphone), so the mixer never holds
    the other tracks back waiting for it.

    :param path: The track's file.
    :param offset: Seconds from the start of the recording to its first frame.
    :param source: The mixer input it feeds.
    """

    def __init__(self, path: Path, offset: float, source: Any) -> None:
        self._source = source
        self._frames = self._resampled(path, offset)
        self._next: tuple[int, av.AudioFrame] | None = next(self._frames, None)
        self._position = 0
        self.ended = False

    @staticmethod
    def _resampled(path: Path, offset: float) -> Generator[tuple[int, av.AudioFrame], None, None]:
        """Mono frames at the mix's rate, each with its first sample's place in the recording."""
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        at = 0
        for time, frame in _decoded(path, offset):
            at = round(time * AUDIO_RATE)
            for converted in resampler.resample(frame):
                yield at, converted
                at += converted.samples
        for converted in resampler.resample(None):
            yield at, converted
            at += converted.samples

    def feed(self, until: int) -> None:
        """
        Push the track's samples up to sample `until` of the recording (a frame may go past).

        :param until: The sample (at the mix's rate) to reach.
        """
        while self._position < until and self._next is not None:
            start, frame = self._next
            if start > self._position:
                self._push_silence(min(start, until))
                continue
            frame.pts, frame.time_base = start, AUDIO_TIME_BASE
            self._source.push(frame)
            self._position = max(self._position, start + frame.samples)
            self._next = next(self._frames, None)
        if self._next is None:
            self.end()

    def _push_silence(self, until: int) -> None:
        while self._position < until:
            samples = min(SILENCE_SAMPLES, until - self._position)
            frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
            frame.planes[0].update(bytes(frame.planes[0].buffer_size))
            frame.sample_rate = AUDIO_RATE
            frame.pts, frame.time_base = self._position, AUDIO_TIME_BASE
            self._source.push(frame)
            self._position += samples

    def end(self) -> None:
        """Tell the mixer this track has no more samples (once)."""
        if not self.ended:
            self.ended = True
            self._source.push(None)

    def close(self) -> None:
        """Close the track's file."""
        self._frames.close()


class AudioMix:
    """
    Every audio track of a recording placed at its offset and mixed into one mono stream,
    produced step by step: :meth:`until` decodes and mixes only up to the time asked for.

    :param directory: The recording's folder.
    :param tracks: Its audio tracks.
    """

    def __init__(self, directory: Path, tracks: list[TrackEntry]) -> None:
        # Kept: the filters live only as long as their graph.
        self._graph = graph = av.filter.Graph()
        mixer = graph.add("amix", f"inputs={len(tracks)}:duration=longest:normalize=0")
        sources = []
        for index, _ in enumerate(tracks):
            source = graph.add_abuffer(
                format="fltp", sample_rate=AUDIO_RATE, layout="mono", time_base=AUDIO_TIME_BASE
            )
            # Trims overlaps and pads small gaps between frames, from their timestamps.
            pad = graph.add("aresample", "async=1:first_pts=0")
            source.link_to(pad)
            pad.link_to(mixer, 0, index)
            sources.append(source)
        formatted = graph.add(
            "aformat", f"sample_fmts=s16:channel_layouts=mono:sample_rates={AUDIO_RATE}"
        )
        mixer.link_to(formatted)
        self._sink = graph.add("abuffersink")
        formatted.link_to(self._sink)
        graph.configure()
        self._inputs: list[_AudioInput] = []
        try:
            for track, source in zip(tracks, sources, strict=True):
                self._inputs.append(
                    _AudioInput(directory / track.name, track.start_offset or 0.0, source)
                )
        except Exception:
            self.close()
            raise

    @property
    def exhausted(self) -> bool:
        """True once every track was fed to its end."""
        return all(track.ended for track in self._inputs)

    def until(self, at: float) -> list[av.AudioFrame]:
        """
        Feed every track up to `at` and take the mixed frames that are ready.

        :param at: Seconds from the start of the recording.
        :return: Mixed mono s16 frames, in order; about the audio since the last call.
        """
        sample = round(at * AUDIO_RATE)
        for track in self._inputs:
            track.feed(sample)
        return self._drain()

    def finish(self) -> list[av.AudioFrame]:
        """End every track and take the last mixed frames."""
        for track in self._inputs:
            track.end()
        return self._drain()

    def _drain(self) -> list[av.AudioFrame]:
        mixed = []
        while True:
            try:
                # An abuffersink gives audio frames only.
                mixed.append(cast(av.AudioFrame, self._sink.pull()))
            except (BlockingIOError, av.error.EOFError):
                return mixed

    def close(self) -> None:
        """Close every track's file."""
        for track in self._inputs:
            track.close()


class _Tile:
    """One video track's picture at the rendition's current time."""

    def __init__(self, directory: Path, track: TrackEntry) -> None:
        self._frames = _decoded(directory / track.name, track.start_offset or 0.0)
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

    def close(self) -> None:
        """Close the track's file."""
        self._frames.close()


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

    Video and audio advance together, a tenth of a second at a time: nothing of a track is
    decoded long before it is encoded.

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
    if audios:
        audio_stream = output.add_stream("libopus", rate=AUDIO_RATE)
        audio_stream.layout = "mono"
        audio_stream.bit_rate = AUDIO_BITRATE

    tiles: list[_Tile] = []
    mix: AudioMix | None = None

    def mux_audio(frames: list[av.AudioFrame]) -> None:
        if audio_stream is not None:
            for frame in frames:
                output.mux(audio_stream.encode(frame))

    try:
        for track in videos:
            tiles.append(_Tile(directory, track))
        mix = AudioMix(directory, audios) if audios else None
        steps = max(1, math.ceil(duration * FPS))
        for index in range(steps):
            at = index / FPS
            if video_stream is not None:
                for tile in tiles:
                    tile.advance(at)
                frame = av.VideoFrame(video_stream.width, video_stream.height, "yuv420p")
                _compose(frame, tiles, columns)
                frame.pts = index
                frame.time_base = fractions.Fraction(1, FPS)
                output.mux(video_stream.encode(frame))
            if mix is not None:
                mux_audio(mix.until(at + 1 / FPS))
            if duration:
                progress(min((index + 1) / (duration * FPS), 1.0))
        if video_stream is not None:
            output.mux(video_stream.encode(None))
        if mix is not None and audio_stream is not None:
            at = steps / FPS
            while not mix.exhausted:  # audio beyond the manifest's durations
                at += 1 / FPS
                mux_audio(mix.until(at))
            mux_audio(mix.finish())
            output.mux(audio_stream.encode(None))
    finally:
        for tile in tiles:
            tile.close()
        if mix is not None:
            mix.close()
        output.close()
    os.replace(temporary, target)
    progress(1.0)
    logger.info("review rendition written", extra={"recording_id": manifest.recording_id})
    return RENDITION_NAME
