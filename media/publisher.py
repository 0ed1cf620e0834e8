"""The server end of a participant's publishing peer connection: the client offers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiortc import RTCIceCandidate, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from .aiortc_hooks import (
    RembLimit,
    negotiated_codec,
    reception_counts,
    send_picture_loss,
    tap_encoded_frames,
    tap_rtp_packets,
)
from .api import Source, SpatialLayer
from .errors import InvalidLayer, InvalidSdp, MediaPortsExhausted, TooManyTracks
from .inlet import InletStream, RtpInlet
from .peer import MediaConfig, RemoteCandidates, create_peer_connection
from .receiver import KeyframeRequester, TrackReceiver

logger = logging.getLogger(__name__)

SENDING = ("sendonly", "sendrecv")


@dataclass(eq=False)
class PublishedTrack:
    """
    One track a participant publishes, and the receiver that fans it out.

    :param participant_id: Who publishes it.
    :param mid: Its media section in the publisher connection.
    :param source: ``camera``, ``microphone`` or ``screen``.
    :param receiver: Receives its packets and hands them to the subscribers' down tracks.
    :param remb: Caps what the publisher may send of it (video only).
    :param reception: Returns the packets of it expected and received so far.
    :param layer: ``low`` for a camera's low layer, None for a track of its own.
    :param low: The low layer of this camera, while its publisher sends one.
    """

    participant_id: str
    mid: str
    source: Source
    receiver: TrackReceiver
    remb: RembLimit | None = None
    reception: Callable[[], tuple[int, int]] | None = None
    layer: SpatialLayer | None = None
    low: PublishedTrack | None = None

    @property
    def kind(self) -> str:
        """``audio`` or ``video``."""
        return self.receiver.kind

    def succeeds(self, other: PublishedTrack) -> bool:
        """
        Tell whether this track takes `other`'s place: the same participant's same source and
        codec, published again on a new connection (after a reconnect).

        :param other: A track of an earlier publisher connection.
        """
        mine, theirs = self.receiver.codec, other.receiver.codec
        return (
            self is not other
            and (self.participant_id, self.source) == (other.participant_id, other.source)
            and mine.mimeType.lower() == theirs.mimeType.lower()
            and mine.parameters == theirs.parameters
        )


def default_sources(description: SessionDescription) -> dict[str, Source]:
    """
    Name the source of each media section when the client did not say.

    The first audio section is the microphone, the first video section the camera, and
    any further one the screen share.

    :param description: A parsed offer.
    """
    sources: dict[str, Source] = {}
    seen: set[str] = set()
    for media in description.media:
        if media.kind == "audio":
            sources[media.rtp.muxId] = "screen" if "audio" in seen else "microphone"
        elif media.kind == "video":
            sources[media.rtp.muxId] = "screen" if "video" in seen else "camera"
        seen.add(media.kind)
    return sources


def check_one_track_per_source(
    description: SessionDescription,
    sources: Mapping[str, Source],
    layers: Mapping[str, SpatialLayer] | None = None,
) -> None:
    """
    Refuse an offer that sends two tracks of one source and kind (two cameras, two screens),
    or a low layer that is not a camera's video.

    A screen share may carry its sound (a video and an audio section named ``screen``), a
    camera its low layer (a second video section named ``camera``, with the layer ``low``).
    Only sending sections count: the web client keeps a stopped share's section, inactive,
    for the next share.

    :param description: A parsed offer.
    :param sources: The source of each media section, by mid.
    :param layers: The sections that carry a low layer, by mid.
    :raises TooManyTracks: naming the source sent twice.
    :raises InvalidLayer: for a low layer of anything but a camera's video, or one naming
        no media section.
    """
    layers = layers or {}
    mids = {media.rtp.muxId: media for media in description.media}
    sending: set[tuple[Source, str, SpatialLayer | None]] = set()
    for mid in layers:
        media = mids.get(mid)
        if media is None or media.kind != "video" or sources.get(mid) != "camera":
            raise InvalidLayer(f"section {mid!r} cannot carry a low layer: not a camera's video")
    for media in description.media:
        mid = media.rtp.muxId
        source = sources.get(mid)
        if source is None or media.direction not in SENDING or media.port == 0:
            continue
        key = (source, media.kind, layers.get(mid))
        if key in sending:
            raise TooManyTracks(f"a publisher sends at most one {media.kind} track of its {source}")
        sending.add(key)


class Publisher:
    """
    The server end of one participant's publishing peer connection.

    Each received track is tapped before decoding and handed to a
    :class:`TrackReceiver`: its RTP packets as they arrive, its reassembled frames for
    recording; nothing is decoded.

    :param participant_id: The publishing participant.
    :param config: The media configuration.
    :param on_change: Called when the set of published tracks or their sources change.
    """

    def __init__(
        self, participant_id: str, config: MediaConfig, on_change: Callable[[], None]
    ) -> None:
        self.participant_id = participant_id
        self._pc = create_peer_connection(config)
        self._packet_inlet = config.packet_inlet
        self._inlet: RtpInlet | None = None
        self._pc.on("track", self._on_track)
        self._candidates = RemoteCandidates(self._pc)
        self._on_change = on_change
        self._received: dict[str, PublishedTrack] = {}
        self._published: list[PublishedTrack] = []

    @property
    def tracks(self) -> list[PublishedTrack]:
        """The tracks currently published, in media section order."""
        return self._published

    async def handle_offer(
        self,
        sdp: str,
        sources: Mapping[str, Source] | None = None,
        layers: Mapping[str, SpatialLayer] | None = None,
    ) -> str:
        """
        Apply the client's offer and return the answer (with all our candidates).

        :param sdp: The offer SDP; a renegotiation is simply another offer.
        :param sources: Optional ``{mid: source}``; see :func:`default_sources`.
        :param layers: Optional ``{mid: "low"}``: sections that carry a camera's low layer.
        :raises InvalidSdp: when the offer cannot be applied.
        :raises TooManyTracks: when it sends two tracks of one source; nothing is applied.
        :raises InvalidLayer: when a low layer is not a camera's video; nothing is applied.
        """
        if not sdp.startswith("v=0"):
            raise InvalidSdp("the offer is not an SDP description")
        try:
            description = SessionDescription.parse(sdp)
        except Exception as exc:
            raise InvalidSdp(f"cannot parse the offer: {exc}") from exc
        named = {**default_sources(description), **(sources or {})}
        check_one_track_per_source(description, named, layers)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self._candidates.flush()
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except MediaPortsExhausted:
            raise
        except Exception as exc:
            # aiortc reports a bad description with whatever exception its parser raises.
            raise InvalidSdp(f"cannot apply the offer: {exc}") from exc
        self._update_published(description, named, layers or {})
        return self._pc.localDescription.sdp

    async def add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        """
        Add a remote candidate, or None for the end of candidates.

        :param candidate: A parsed, usable candidate.
        """
        await self._candidates.add(candidate)

    async def close(self) -> None:
        """Close the connection and end every published track."""
        for track in self._received.values():
            track.receiver.end()
        self._published = []
        await self._pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        # Emitted inside setRemoteDescription, before the receiver can start decoding.
        transceiver = next(t for t in self._pc.getTransceivers() if t.receiver.track is track)
        rtp_receiver = transceiver.receiver
        codec = negotiated_codec(transceiver)
        mid = transceiver.mid
        if codec is None or mid is None:
            return

        async def picture_loss() -> bool:
            return await send_picture_loss(rtp_receiver)

        receiver = TrackReceiver(codec, KeyframeRequester(picture_loss))
        if self._packet_inlet:
            if self._inlet is None:
                # Emitted after bundling: every receiver has the connection's one transport.
                self._inlet = RtpInlet(rtp_receiver.transport)
            self._inlet.add(rtp_receiver, InletStream(rtp_receiver, transceiver._codecs, receiver))
        else:
            tap_rtp_packets(rtp_receiver, receiver.on_packet)
        # Also what tells the track it ended (BYE, disconnect, close).
        tap_encoded_frames(rtp_receiver, receiver.on_frame, receiver.end)
        remb = RembLimit(rtp_receiver) if receiver.kind == "video" else None
        self._received[mid] = PublishedTrack(
            self.participant_id,
            mid,
            "camera",
            receiver,
            remb,
            lambda: reception_counts(rtp_receiver),
        )

    def _update_published(
        self,
        description: SessionDescription,
        sources: Mapping[str, Source],
        layers: Mapping[str, SpatialLayer],
    ) -> None:
        published: list[PublishedTrack] = []
        changed = False
        for media in description.media:
            track = self._received.get(media.rtp.muxId)
            if track is None or media.direction not in SENDING or media.port == 0:
                continue
            source = sources.get(track.mid, track.source)
            layer = layers.get(track.mid)
            if (source, layer) != (track.source, track.layer):
                track.source, track.layer = source, layer
                if track.remb is not None:
                    # The publisher's browser takes any REMB as the cap of all it sends: only
                    # the full camera's receiver may speak; the low layer's cap is its own
                    # maxBitrate.
                    track.remb.silent = layer is not None
                changed = True
            published.append(track)
        low = next((t for t in published if t.layer == "low"), None)
        for track in published:
            full_camera = track.layer is None and track.source == "camera" and track.kind == "video"
            track.low = low if full_camera else None
        if changed or published != self._published:
            self._published = published
            logger.info(
                "%s publishes %s",
                self.participant_id,
                [
                    f"{t.mid}:{t.source}{'/low' if t.layer else ''}:{t.receiver.codec.mimeType}"
                    for t in published
                ],
            )
            self._on_change()
