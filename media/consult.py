"""One consult's forwarding unit: who publishes what, and who receives it."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from pathlib import Path

from .api import ConsultMediaSession, SignalSender, Source
from .bandwidth import Quality, UplinkLoss, worse
from .errors import AlreadyRecording
from .layers import LayerRates
from .metrics import observe
from .participant import ParticipantMedia
from .peer import MediaConfig
from .publisher import PublishedTrack
from .recording import ConsultRecorder, Manifest

logger = logging.getLogger(__name__)

ADAPT_INTERVAL = 1.0
"""Seconds between two rounds of layer choices for every subscriber."""

MIN_PUBLISHER_BITRATE = 100_000
"""The lowest bit rate (bit/s) a publisher's video is capped to: its base layer still fits."""

OTHER_VIDEO_HEADROOM = 1.5
"""Factor on the payload bit rate measured of a publisher's other videos (a camera's low layer,
a screen) in what its REMB allows: their packets' headers and their own growth."""

QUALITY_EVERY = 2
"""Rounds between two ``link_quality`` events (every 2 s)."""


class ConsultMedia(ConsultMediaSession):
    """
    The SFU of one consult, in this process: every participant receives every other's tracks
    (a camera's low layer only in that camera's place, and it is never recorded).

    The in-process :class:`~media.api.ConsultMediaSession`, where its methods are documented.
    While anyone is connected, every :data:`ADAPT_INTERVAL` seconds each subscriber chooses
    its layers again from its link's estimate, and every :data:`QUALITY_EVERY` rounds every
    participant is sent ``link_quality``: each participant's downlink quality. Each publisher
    is then capped (one REMB for all the video it sends: browsers apply it to the whole
    connection) to what the best-served subscriber of each of its videos can take (one on the
    camera's low layer takes none of it), at least :data:`MIN_PUBLISHER_BITRATE` a video, plus
    what its other videos take (their measured rate, :data:`OTHER_VIDEO_HEADROOM`), which is
    also added to the estimate of the one receiver that speaks for the connection
    (:class:`~media.aiortc_hooks.RembLimit`). No cap while a recording runs, or while any
    subscriber's link is not known to limit it.

    :param consult_id: The consult.
    :param config: The media configuration.
    :param adapt_interval: Seconds between two rounds of layer choices.
    """

    def __init__(
        self, consult_id: str, config: MediaConfig, adapt_interval: float = ADAPT_INTERVAL
    ) -> None:
        self.consult_id = consult_id
        self._config = config
        self._adapt_interval = adapt_interval
        self._adapting: asyncio.Task[None] | None = None
        self._uplinks: dict[str, UplinkLoss] = {}
        self._participants: dict[str, ParticipantMedia] = {}
        self._muted: set[tuple[str, Source]] = set()
        self._recorder: ConsultRecorder | None = None
        self._payload_rates: weakref.WeakKeyDictionary[PublishedTrack, LayerRates] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def participants(self) -> dict[str, ParticipantMedia]:
        """The participants with media, by participant id."""
        return self._participants

    async def join(self, participant_id: str, send: SignalSender) -> ParticipantMedia:
        """Give a participant its two connections and offer it the others' tracks.

        Joining again (a reconnect, new peer connections) closes the previous connections but
        does not withdraw their tracks from the others: their places wait, paused, for the
        tracks the new connection publishes, which take them over from a keyframe without a
        renegotiation, and the recording goes on with a new segment of each track. Tracks
        the new connection no longer publishes are withdrawn when it publishes.
        """
        previous = self._participants.pop(participant_id, None)
        if previous is not None:
            await previous.close()
            logger.info("consult %s: %s replaces its media", self.consult_id, participant_id)
        participant = ParticipantMedia(
            participant_id, self._config, send, lambda: self._published(participant_id)
        )
        self._participants[participant_id] = participant
        logger.info("consult %s: %s joined media", self.consult_id, participant_id)
        if self._adapting is None or self._adapting.done():
            self._adapting = asyncio.ensure_future(self._adapt_forever())
        participant.subscriber.set_tracks(self._tracks_for(participant_id))
        return participant

    async def leave(self, participant_id: str) -> None:
        """Close a participant's connections and withdraw its tracks from the others."""
        participant = self._participants.pop(participant_id, None)
        self._uplinks.pop(participant_id, None)
        self._muted = {key for key in self._muted if key[0] != participant_id}
        if participant is None:
            return
        await participant.close()
        logger.info("consult %s: %s left media", self.consult_id, participant_id)
        self._update_subscribers()

    def set_muted(self, participant_id: str, source: Source, muted: bool) -> None:
        """Mute or unmute the receivers of that source; kept for tracks published later."""
        if muted:
            self._muted.add((participant_id, source))
        else:
            self._muted.discard((participant_id, source))
        participant = self._participants.get(participant_id)
        if participant is not None:
            for track in participant.publisher.tracks:
                if track.source == source:
                    track.receiver.set_muted(muted)

    async def set_audio_only(self, participant_id: str, enabled: bool) -> None:
        """Stop (or resume) every video to that participant, by its own choice."""
        participant = self._participants.get(participant_id)
        if participant is not None:
            await participant.subscriber.choose_audio_only(enabled)

    def link_qualities(self) -> dict[str, Quality]:
        """Each participant's connection quality, as ``link_quality`` reports it: the worse
        of its downlink (what its browser reports) and its uplink (what the server lost)."""
        return {
            pid: worse(p.subscriber.quality(), self._uplink(pid).quality())
            for pid, p in self._participants.items()
        }

    def _uplink(self, participant_id: str) -> UplinkLoss:
        return self._uplinks.setdefault(participant_id, UplinkLoss())

    def _measure_uplinks(self) -> None:
        for pid, participant in self._participants.items():
            counts = [t.reception() for t in participant.publisher.tracks if t.reception]
            self._uplink(pid).update(sum(c[0] for c in counts), sum(c[1] for c in counts))

    async def _adapt_forever(self) -> None:
        last = time.monotonic()
        rounds = 0
        while self._participants:
            await asyncio.sleep(self._adapt_interval)
            now = time.monotonic()
            elapsed, last = now - last, now
            rounds += 1
            self._measure_uplinks()
            qualities = None
            if rounds % QUALITY_EVERY == 0:
                qualities = {
                    "participants": {
                        pid: {"quality": q} for pid, q in self.link_qualities().items()
                    }
                }
            for participant in list(self._participants.values()):
                try:
                    await participant.subscriber.adapt(now, elapsed)
                    observe(participant.subscriber, elapsed)
                    if qualities is not None:
                        await participant.send("link_quality", qualities)
                except Exception:
                    # One participant's failed event (its connection gone) must not stop
                    # the others' adaptation.
                    logger.warning(
                        "consult %s: adapting %s failed",
                        self.consult_id,
                        participant.participant_id,
                        exc_info=True,
                    )
            self._limit_publishers(elapsed)

    def _limit_publishers(self, elapsed: float) -> None:
        participants = list(self._participants.values())
        for owner in participants:
            rembs = {t: t.remb for t in owner.publisher.tracks if t.remb is not None}
            full = [t for t in rembs if t.layer is None]
            if not full:
                continue
            # The publisher's browser takes any REMB as the cap of all the video it sends: one
            # receiver of the connection speaks for all of them.
            speaker = next((t for t in full if t.source == "camera"), full[0])
            for track, remb in rembs.items():
                remb.silent = track is not speaker
            needs: list[float] = []
            for track in full:
                budgets = [
                    p.subscriber.budget_for(track)
                    for p in participants
                    if p is not owner and p.subscriber.receives(track)
                ]
                known = [b for b in budgets if b is not None]
                if not budgets or len(known) < len(budgets):
                    needs = []
                    break
                needs.append(max(MIN_PUBLISHER_BITRATE, *known))
            others = int(
                sum(
                    self._payload_rate(t, elapsed) * OTHER_VIDEO_HEADROOM
                    for t in rembs
                    if t is not speaker
                )
            )
            limited = bool(needs) and self._recorder is None
            rembs[speaker].others = others
            rembs[speaker].set_limit(int(sum(needs)) + others if limited else None)

    def _payload_rate(self, track: PublishedTrack, elapsed: float) -> float:
        """Payload bit/s received of `track` lately (all its temporal layers)."""
        rates = self._payload_rates.setdefault(track, LayerRates())
        return rates.update(track.receiver.layer_bytes, elapsed)[-1]

    @property
    def recorder(self) -> ConsultRecorder | None:
        """The running recording, if any."""
        return self._recorder

    def start_recording(self, recording_dir: Path, manifest: Manifest) -> ConsultRecorder:
        """Start a :class:`ConsultRecorder` on every track published now and later."""
        if self._recorder is not None:
            raise AlreadyRecording("this consult is already being recorded")
        recorder = ConsultRecorder(recording_dir, manifest)
        recorder.start()
        self._recorder = recorder
        recorder.sync(self._all_tracks())
        return recorder

    async def stop_recording(self) -> Manifest | None:
        """Stop the recording, if one runs; its complete manifest."""
        recorder, self._recorder = self._recorder, None
        return await recorder.stop() if recorder is not None else None

    async def close(self) -> None:
        """Stop the recording and close every participant's connections."""
        if self._adapting is not None:
            self._adapting.cancel()
        await self.stop_recording()
        for participant_id in list(self._participants):
            await self.leave(participant_id)

    def load(self) -> tuple[int, int]:
        """The participants publishing here, and the tracks forwarded to subscribers."""
        publishers = sum(1 for p in self._participants.values() if p.publisher.tracks)
        forwarded = sum(len(self._tracks_for(pid)) for pid in self._participants)
        return publishers, forwarded

    def _published(self, participant_id: str) -> None:
        participant = self._participants.get(participant_id)
        if participant is None:
            return
        for track in participant.publisher.tracks:
            track.receiver.set_muted((participant_id, track.source) in self._muted)
        self._update_subscribers()

    def _tracks_for(self, participant_id: str) -> list[PublishedTrack]:
        """The others' tracks: a camera's low layer is forwarded in its camera's place only."""
        return [
            track
            for other in self._participants.values()
            if other.participant_id != participant_id
            for track in other.publisher.tracks
            if track.layer is None
        ]

    def _all_tracks(self) -> list[PublishedTrack]:
        """Every track to record: each camera in full, never its low layer."""
        return [
            t for p in self._participants.values() for t in p.publisher.tracks if t.layer is None
        ]

    def _update_subscribers(self) -> None:
        if self._recorder is not None:
            self._recorder.sync(self._all_tracks())
        for participant in self._participants.values():
            participant.subscriber.set_tracks(self._tracks_for(participant.participant_id))
