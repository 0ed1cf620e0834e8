"""The server end of a participant's subscribing peer connection: the server offers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiortc import (
    RTCIceCandidate,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from .aiortc_hooks import (
    ReportSink,
    RtpOutlet,
    on_keyframe_request,
    on_receiver_feedback,
    on_retransmission_request,
)
from .api import SignalSender
from .bandwidth import LOSS_HIGH, LinkEstimator, Quality
from .down_track import DownTrack
from .errors import InvalidSdp, MediaPortsExhausted, NoPendingOffer
from .layers import (
    AUDIO_ONLY_BELOW,
    PAUSE_BELOW,
    SPEAKER_WINDOW,
    ActiveSpeaker,
    LayerRates,
    LayerSelector,
    Selection,
    VideoDemand,
    VoiceLimit,
    ladder,
)
from .peer import MediaConfig, RemoteCandidates, create_peer_connection
from .publisher import PublishedTrack
from .receiver import TrackReceiver

logger = logging.getLogger(__name__)


def codec_preferences(kind: str, codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """
    Return the codec preferences that make a subscriber transceiver send `codec` only.

    :param kind: ``audio`` or ``video``.
    :param codec: The codec a publisher sends; video keeps RTX for retransmissions.
    """
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [
        c
        for c in capabilities
        if c.mimeType.lower() == codec.mimeType.lower() and c.parameters == codec.parameters
    ]
    if kind == "video":
        chosen += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    return chosen


@dataclass(eq=False)
class SubscriberSlot:
    """
    One sending transceiver of a subscriber connection and the down track it sends.

    A slot outlives the published tracks it carries: when one goes away the slot turns
    inactive and is reused for the next track of the same kind and codec, so the SDP
    does not grow with every join and leave.

    :param transceiver: The sending transceiver.
    :param down_track: The track its sender reads.
    :param codec: The codec it was negotiated for.
    :param published: The published track it carries, if any.
    :param on_low: Whether it forwards the low layer of that camera rather than the track.
    :param low_rungs: How many of the first layers of its ladder are the low layer's
        temporal layers (:func:`~media.layers.ladder`).
    """

    transceiver: RTCRtpTransceiver
    down_track: DownTrack
    codec: RTCRtpCodecParameters
    published: PublishedTrack | None = None
    on_low: bool = False
    low_rungs: int = 0

    @property
    def feed(self) -> TrackReceiver | None:
        """The receiver this slot forwards from: the camera's low layer's, or the track's."""
        published = self.published
        if published is None:
            return None
        if self.on_low and published.low is not None:
            return published.low.receiver
        return published.receiver

    def fits(self, published: PublishedTrack) -> bool:
        """
        Tell whether this free slot can carry `published`.

        :param published: A published track.
        """
        codec = published.receiver.codec
        return (
            self.published is None
            and self.codec.mimeType.lower() == codec.mimeType.lower()
            and self.codec.parameters == codec.parameters
        )


WEAK_MEMORY = 5.0
"""Seconds a link seen to limit what it is sent still counts as weak (see :meth:`adapt`)."""

WARM_UP = 3.0
"""Seconds after the first REMB during which estimates are not acted on: a browser's first
estimates come before it has measured anything."""

ReceiveMode = tuple[bool, str | None]
"""``(audio only, reason)`` as the ``receive_mode`` event says it."""

PausedSource = tuple[str, str]
"""``(participant id, source)`` of a video or a voice paused because the link cannot carry it."""


class Subscriber:
    """
    The server end of one participant's subscribing peer connection.

    It always offers; one offer is in flight at a time, and changes that arrive
    meanwhile go into the next offer once the answer is in. A slot starts forwarding
    once its offer is answered and the connection is up. Its :attr:`link` estimates what
    the participant's downlink carries from the RTCP its browser sends, and
    :meth:`adapt` chooses from it the layer of each video, or audio only: screen shares
    first, then the active speaker's camera (whose audio most recently carried the RFC 6464
    voice flag, held a while: :class:`~media.layers.ActiveSpeaker`), then the other cameras.
    A camera whose publisher sends a low layer is forwarded from it when the full one does
    not fit (the slot's down track is attached to the low layer's receiver, and back, from a
    keyframe); a video that does not fit even at its lowest layer is paused. A link too weak
    for any video that still loses its voices gets only the latest speakers'
    (:class:`~media.layers.VoiceLimit`).

    :param participant_id: The subscribing participant.
    :param config: The media configuration.
    :param send: Sends ``subscriber_offer`` events to the participant (and ``media_error``
        when its connection cannot be set up).
    """

    def __init__(self, participant_id: str, config: MediaConfig, send: SignalSender) -> None:
        self.participant_id = participant_id
        self._pc = create_peer_connection(config)
        self._pc.on("connectionstatechange", self._attach_answered)
        self._candidates = RemoteCandidates(self._pc)
        self._send = send
        self._slots: list[SubscriberSlot] = []
        self._wanted: list[PublishedTrack] = []
        self._offered: dict[SubscriberSlot, PublishedTrack] = {}
        self._answered: dict[SubscriberSlot, PublishedTrack] = {}
        self._dirty = False
        self._pending_offer = False
        self._closed = False
        #: No UDP port was left for this connection: it offers nothing more (the participant
        #: was told, and sets up new connections to try again).
        self._without_ports = False
        self._task: asyncio.Task[None] | None = None
        self.link = LinkEstimator()
        self._selector = LayerSelector()
        self._rates: dict[TrackReceiver, LayerRates] = {}
        self._stalled: set[DownTrack] = set()
        self._audio_only_chosen = False
        self._receive_mode: ReceiveMode = (False, None)
        self._paused: tuple[PausedSource, ...] = ()
        self._speaker = ActiveSpeaker()
        self._voices = VoiceLimit()
        self.wanted_bitrate = 0.0
        """Bit/s of every video it receives at full rate, as last measured."""
        self.sent_bitrate = 0.0
        """Bit/s of payload sent to it, as last measured."""
        self._bytes_sent = 0
        self._limited_at: float | None = None
        self._estimating_since: float | None = None
        self._limit: float | None = None

    @property
    def slots(self) -> list[SubscriberSlot]:
        """The transceivers of the connection, in creation order."""
        return self._slots

    def set_tracks(self, tracks: Sequence[PublishedTrack]) -> None:
        """
        Make the subscriber receive exactly `tracks`, renegotiating if needed.

        Tracks that go away stop being forwarded at once. A track that takes the place of one
        going away (:meth:`PublishedTrack.succeeds`: its publisher reconnected) is forwarded
        on the same transceiver, from its first keyframe, without a new offer: the
        subscriber keeps its track and sees a pause.

        :param tracks: The published tracks this participant should receive.
        """
        self._wanted = list(tracks)
        carried = {slot.published for slot in self._slots if slot.published in self._wanted}
        for slot in self._slots:
            previous = slot.published
            if previous is None or previous in self._wanted:
                continue
            successor = next(
                (t for t in self._wanted if t not in carried and t.succeeds(previous)), None
            )
            if successor is not None:
                self._hand_over(slot, previous, successor)
                carried.add(successor)
            else:
                slot.down_track.detach()
                slot.published = None
                self._dirty = True
        if any(track not in carried for track in self._wanted):
            self._dirty = True
        self._schedule_negotiation()

    @property
    def receive_mode(self) -> ReceiveMode:
        """Whether it gets audio only, and why (``weak_connection`` or ``chosen``)."""
        return self._receive_mode

    @property
    def selection(self) -> Selection:
        """The latest choice of layers."""
        return self._selector.current

    def quality(self) -> Quality:
        """Its downlink's quality: loss, round-trip time, and estimate against full video."""
        return self.link.quality(self.wanted_bitrate or None)

    def video_layers(self) -> list[int | None]:
        """The temporal layer forwarded of each video it receives; None for a paused one."""
        return [
            None if slot.down_track.paused else slot.down_track.forwarded_layer
            for slot in self._slots
            if slot.published is not None and slot.published.kind == "video"
        ]

    def receives(self, published: PublishedTrack) -> bool:
        """
        Tell whether a slot of this subscriber carries `published`.

        :param published: A published track.
        """
        return any(slot.published is published for slot in self._slots)

    def budget_for(self, published: PublishedTrack) -> float | None:
        """
        Bit/s this subscriber's link can take of one video it receives: an equal share of
        its limit; None when no limit is known, 0 when it gets none of that track (audio
        only, the video paused, or forwarded from the camera's low layer).

        :param published: A video it receives.
        """
        slot = next((s for s in self._slots if s.published is published), None)
        if self._receive_mode[0] or slot is None:
            return 0.0
        if self._limit is None:
            return None  # also while it climbs back from a lower layer: nothing limits it
        if slot.down_track.paused or slot.feed is not published.receiver:
            return 0.0
        videos = sum(
            1 for s in self._slots if s.published is not None and s.published.kind == "video"
        )
        return self._limit / max(videos, 1)

    async def choose_audio_only(self, enabled: bool) -> None:
        """
        The participant chose to receive audio only (or video again).

        :param enabled: True to stop every video to it until it says otherwise.
        """
        self._audio_only_chosen = enabled
        self._apply(self._selector.current)
        await self._announce()

    async def adapt(self, now: float, elapsed: float) -> None:
        """
        Choose again, from the latest estimate, what each video forwards to it.

        Sends ``receive_mode`` when audio only starts or ends.

        :param now: The time in seconds (monotonic).
        :param elapsed: Seconds since the previous call, to turn byte counts into rates.
        """
        videos = []
        speaker = self._active_speaker(now)
        rates: dict[TrackReceiver, LayerRates] = {}
        for slot in self._slots:
            published = slot.published
            if published is None or published.kind != "video":
                continue
            full = self._rate(rates, published.receiver, elapsed)
            low = published.low
            low_rates = None if low is None else self._rate(rates, low.receiver, elapsed)
            if not rates[published.receiver].measured:
                continue  # a new video stays as it starts (full) until its rates are known
            rungs = 0 if low_rates is None else len(low_rates)
            if rungs != slot.low_rungs:
                self._selector.move(slot.down_track, self._moved(slot, rungs))
                slot.low_rungs = rungs
            layers = ladder(full, low_rates)
            if published.source == "screen":
                priority = 0
            else:
                priority = 1 if published.participant_id == speaker else 2
            videos.append(VideoDemand(slot.down_track, layers, priority))
        self._rates = rates
        self.wanted_bitrate = sum(video.layer_bitrates[-1] for video in videos)
        # The browser's REMB covers the streams that carry abs-send-time, which aiortc
        # negotiates for video only: the estimate is of what the link carries of video.
        sent = sum(s.down_track.bytes_sent for s in self._slots if s.down_track.kind == "video")
        if elapsed > 0:
            self.sent_bitrate = (sent - self._bytes_sent) * 8 / elapsed
        self._bytes_sent = sent
        if self._estimating_since is None and self.link.estimate is not None:
            self._estimating_since = now
        limit = None
        if self._estimating_since is not None and now - self._estimating_since >= WARM_UP:
            limit = self.link.limit(self.sent_bitrate)
        remb = self.link.remb
        if limit is not None:
            self._limited_at = now
        # A link seen to limit what it was sent lately keeps its estimate as the limit even
        # while it carries what it is sent now (after its layers were lowered): climbing waits
        # for the estimate to grow, or for WEAK_MEMORY to pass without a limit seen.
        lately = self._limited_at is not None and now - self._limited_at < WEAK_MEMORY
        if limit is None and lately:
            limit = self.link.estimate
        # Video goes only when the browser's own estimate is that low too: heavy loss alone
        # (a receiver starved of CPU drops packets) lowers layers, not the video. Under
        # AUDIO_ONLY_BELOW it goes when the link loses heavily, or was seen to limit lately:
        # once its videos are paused a weak link loses little and its browser's estimate stays
        # where it was.
        severe = (
            remb is not None and remb < AUDIO_ONLY_BELOW and (self.link.loss > LOSS_HIGH or lately)
        )
        self._limit = limit
        # A video is paused only when the link is seen to limit what is sent (loss, or a
        # queue's round trip) and the browser's own estimate cannot take every video at its
        # lowest layer, and is under PAUSE_BELOW.
        lowest = sum(video.layer_bitrates[0] for video in videos)
        pause = limit is not None and remb is not None and remb < min(lowest, PAUSE_BELOW)
        video_back = self._voices.count is None
        selection = self._selector.select(limit, videos, now, severe, pause, video_back)
        self._apply(selection)
        self._choose_voices(selection.audio_only and not self._audio_only_chosen, now)
        await self._announce()

    @staticmethod
    def _moved(slot: SubscriberSlot, rungs: int) -> int:
        """The index of the layer `slot` forwards now in its ladder with `rungs` low rungs."""
        temporal = slot.down_track.temporal_layer
        if slot.on_low and rungs:
            return min(temporal, rungs - 1)
        return rungs + (0 if slot.on_low else temporal)

    def _rate(
        self, rates: dict[TrackReceiver, LayerRates], receiver: TrackReceiver, elapsed: float
    ) -> tuple[float, ...]:
        """Bit/s of `receiver`'s temporal layers, cumulative; kept in `rates` for next time."""
        rate = rates[receiver] = self._rates.get(receiver) or LayerRates()
        return rate.update(receiver.layer_bytes, elapsed)

    def _active_speaker(self, now: float) -> str | None:
        """Whose camera has the speaker's priority for this subscriber."""
        voices = {
            published.participant_id: voice_at
            for _, published in self._voices_received()
            if (voice_at := published.receiver.voice_at) is not None
        }
        return self._speaker.update(voices, now)

    def _voices_received(self) -> list[tuple[SubscriberSlot, PublishedTrack]]:
        """The slots that carry a participant's microphone, with it."""
        return [
            (slot, slot.published)
            for slot in self._slots
            if slot.published is not None and slot.published.source == "microphone"
        ]

    def _choose_voices(self, weak: bool, now: float) -> None:
        """Forward the voices :class:`~media.layers.VoiceLimit` allows: those who spoke last,
        among those speaking now the ones already forwarded."""
        voices = self._voices_received()
        count = self._voices.update(len(voices), weak, now)
        if count is not None:

            def latest(voice: tuple[SubscriberSlot, PublishedTrack]) -> tuple[bool, bool, float]:
                voice_at = voice[1].receiver.voice_at
                speaking = voice_at is not None and voice_at > now - SPEAKER_WINDOW
                return speaking, not voice[0].down_track.paused, voice_at or float("-inf")

            voices.sort(key=latest, reverse=True)
        for rank, (slot, _) in enumerate(voices):
            slot.down_track.paused = count is not None and rank >= count

    def _on_voice_report(self, track: DownTrack) -> ReportSink:
        """The receiver reports about one voice: for the link, and while the voice is
        forwarded, for the voices a weak link takes."""

        def report(fraction_lost: int, jitter: float, rtt: float | None) -> None:
            self.link.on_receiver_report(fraction_lost, jitter, rtt)
            if not track.paused:
                self._voices.report(fraction_lost, time.monotonic())

        return report

    def _apply(self, selection: Selection) -> None:
        for slot in self._slots:
            track = slot.down_track
            if slot.published is None or slot.published.kind != "video":
                continue
            if track not in selection.layers:  # not chosen for yet: its rates are unknown
                track.paused = self._audio_only_chosen or selection.audio_only
                continue
            layer = selection.layers[track]
            track.paused = self._audio_only_chosen or layer is None
            if layer is not None:
                rungs = slot.low_rungs if slot.published.low is not None else 0
                slot.on_low = layer < rungs
                track.temporal_layer = layer if slot.on_low else layer - rungs
                feed = slot.feed
                if feed is not None and self._forwarding(slot):
                    track.attach(feed)  # from the next keyframe, which it asks for
            if track.climbing and not track.paused:
                # No sync picture came since the last round: ask for a keyframe instead.
                if track in self._stalled:
                    track.request_keyframe()
                self._stalled.add(track)
            else:
                self._stalled.discard(track)

    async def _announce(self) -> None:
        if self._audio_only_chosen:
            mode: ReceiveMode = (True, "chosen")
        elif self._selector.current.audio_only:
            mode = (True, "weak_connection")
        else:
            mode = (False, None)
        paused = self._paused_now("audio" if mode[0] else None)
        if mode != self._receive_mode or paused != self._paused:
            self._receive_mode, self._paused = mode, paused
            logger.info(
                "%s receives %s, %d paused",
                self.participant_id,
                "audio only" if mode[0] else "video",
                len(paused),
            )
            await self._send(
                "receive_mode",
                {
                    "audio_only": mode[0],
                    "reason": mode[1],
                    "paused": [
                        {"participant_id": pid, "source": source, "reason": "weak_connection"}
                        for pid, source in paused
                    ],
                },
            )

    def _paused_now(self, kind: str | None) -> tuple[PausedSource, ...]:
        """What is paused for the link, or only what is of `kind`: on audio only every video
        is, and the voices paused say who is not heard."""
        return tuple(
            (slot.published.participant_id, slot.published.source)
            for slot in self._slots
            if slot.published is not None
            and kind in (None, slot.published.kind)
            and slot.down_track.paused
        )

    async def handle_answer(self, sdp: str) -> None:
        """
        Apply the client's answer to the outstanding offer.

        :param sdp: The answer SDP.
        :raises NoPendingOffer: without an outstanding offer.
        :raises InvalidSdp: when the answer cannot be applied.
        """
        if not self._pending_offer:
            raise NoPendingOffer("there is no subscriber offer to answer")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            await self._candidates.flush()
        except Exception as exc:
            # aiortc reports a bad description with whatever exception its parser raises.
            raise InvalidSdp(f"cannot apply the answer: {exc}") from exc
        self._pending_offer = False
        self._answered = self._offered
        self._attach_answered()
        self._schedule_negotiation()

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """
        Add a remote candidate, or None for the end of candidates.

        :param candidate: A parsed, usable candidate.
        """
        await self._candidates.add(candidate)

    async def close(self) -> None:
        """Stop every track and close the connection."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        for slot in self._slots:
            slot.down_track.stop()
        await self._pc.close()

    def _schedule_negotiation(self) -> None:
        if self._dirty and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._negotiate())
            self._task.add_done_callback(self._negotiation_done)

    def _negotiation_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "subscriber offer to %s failed", self.participant_id, exc_info=task.exception()
            )

    async def _negotiate(self) -> None:
        while self._dirty and not self._pending_offer and not self._closed:
            if self._without_ports:
                return
            self._dirty = False
            self._offered = self._assign_slots()
            if not self._slots:
                return
            try:
                # The first offer gathers the connection's ICE sockets: its ports are taken here.
                await self._pc.setLocalDescription(await self._pc.createOffer())
            except MediaPortsExhausted as exc:
                self._without_ports = True
                logger.warning("no media port for %s's receiving connection", self.participant_id)
                await self._send("media_error", {"code": exc.code, "message": exc.message})
                return
            self._pending_offer = True
            logger.debug("offer to %s: %d tracks", self.participant_id, len(self._offered))
            tracks = {
                slot.transceiver.mid: {
                    "participant_id": published.participant_id,
                    "source": published.source,
                }
                for slot, published in self._offered.items()
            }
            await self._send(
                "subscriber_offer",
                {"sdp": self._pc.localDescription.sdp, "type": "offer", "tracks": tracks},
            )

    def _assign_slots(self) -> dict[SubscriberSlot, PublishedTrack]:
        carried = {slot.published for slot in self._slots}
        for published in self._wanted:
            if published in carried:
                continue
            slot = next((s for s in self._slots if s.fits(published)), None)
            if slot is None:
                slot = self._add_slot(published)
            slot.published = published
        offered = {}
        for slot in self._slots:
            slot.transceiver.direction = "sendonly" if slot.published else "inactive"
            if slot.published is not None:
                offered[slot] = slot.published
        return offered

    def _add_slot(self, published: PublishedTrack) -> SubscriberSlot:
        kind, codec = published.kind, published.receiver.codec
        down_track = DownTrack(kind, codec.clockRate)
        transceiver = self._pc.addTransceiver(down_track, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(kind, codec))
        on_keyframe_request(transceiver.sender, down_track.request_keyframe)
        on_retransmission_request(transceiver.sender, down_track.retransmit)
        link = self.link
        on_report = (
            self._on_voice_report(down_track)
            if published.source == "microphone"
            else link.on_receiver_report
        )
        on_receiver_feedback(transceiver.sender, codec.clockRate, link.on_remb, on_report)
        slot = SubscriberSlot(transceiver, down_track, codec)
        self._slots.append(slot)
        return slot

    def _hand_over(
        self, slot: SubscriberSlot, previous: PublishedTrack, successor: PublishedTrack
    ) -> None:
        slot.published = successor
        for negotiated in (self._offered, self._answered):
            if negotiated.get(slot) is previous:
                negotiated[slot] = successor
        logger.debug("%s: %s takes over a slot", self.participant_id, successor.mid)
        self._attach_answered()

    def _forwarding(self, slot: SubscriberSlot) -> bool:
        """Whether `slot` forwards: its track's offer is answered and the connection is up."""
        return (
            self._pc.connectionState == "connected"
            and slot.published is not None
            and self._answered.get(slot) is slot.published
        )

    def _attach_answered(self) -> None:
        for slot in self._answered:
            feed = slot.feed
            if self._forwarding(slot) and feed is not None:
                slot.down_track.connect(RtpOutlet(slot.transceiver))
                slot.down_track.attach(feed)
