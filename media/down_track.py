"""A down track: one published track's RTP packets, renumbered and sent to one subscriber."""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, NoReturn

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from .aiortc_hooks import RtpOutlet
from .codecs import PictureNumbers
from .layers import MAX_TEMPORAL_LAYER, TemporalLayerFilter
from .rewriter import RtpRewriter

if TYPE_CHECKING:
    from .receiver import TrackReceiver

HISTORY = 512
"""Packets kept per down track for retransmission (about 3 s of video)."""

_HEADER = struct.Struct("!BBHII")
_EXTENSION_PROFILE = b"\xbe\xde"  # RFC 8285 one-byte header extensions


class DownTrack(MediaStreamTrack):
    """
    The track of one subscriber transceiver, fed with a published track's RTP packets.

    LiveKit calls it a down track, mediasoup a consumer. The packets are already
    packetized by the publisher: per subscriber only the header is rebuilt (SSRC, payload
    type, sequence number, timestamp, header extensions) and the picture numbers are
    moved, by this track's :class:`RtpRewriter`, so the stream stays continuous when
    :meth:`attach` switches it to another published track, when its
    :class:`~media.layers.TemporalLayerFilter` leaves out the pictures of temporal layers
    above :attr:`temporal_layer`, and when :attr:`paused` stops it. The packets leave through an
    :class:`RtpOutlet`; aiortc's sender reads nothing from :meth:`recv`, which only waits
    for the end.

    :param kind: ``audio`` or ``video``.
    :param clock_rate: The codec's RTP clock rate in Hz.
    """

    def __init__(self, kind: str, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self._rewriter = RtpRewriter(clock_rate)
        self._receiver: TrackReceiver | None = None
        self._outlet: RtpOutlet | None = None
        self._needs_keyframe = True
        self._layers = TemporalLayerFilter()
        self._paused = False
        self.bytes_sent = 0
        """Payload bytes forwarded to the subscriber."""
        self._ended = asyncio.Event()
        self._history: list[tuple[int, int, bytes] | None] = [None] * HISTORY
        self._rtx_sequence_number = 0
        self._mid_element = b""
        self._abs_send_time_prefix = b""
        self._audio_level_id = 0

    @property
    def receiver(self) -> TrackReceiver | None:
        """The receiver of the published track feeding this one, if any."""
        return self._receiver

    @property
    def temporal_layer(self) -> int:
        """The highest temporal layer forwarded once a switch point allows it."""
        return self._layers.target

    @temporal_layer.setter
    def temporal_layer(self, layer: int) -> None:
        self._layers.target = min(max(layer, 0), MAX_TEMPORAL_LAYER)

    @property
    def forwarded_layer(self) -> int:
        """The highest temporal layer forwarded now."""
        return self._layers.current

    @property
    def climbing(self) -> bool:
        """True while a higher :attr:`temporal_layer` waits for a switch point."""
        return self._layers.climbing

    @property
    def paused(self) -> bool:
        """True while nothing is forwarded: a video (or a voice) its subscriber's link cannot
        carry."""
        return self._paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            if not paused:
                self.resync()
                if self.kind == "video":
                    self.request_keyframe()

    def connect(self, outlet: RtpOutlet) -> None:
        """
        Send through `outlet` from now on (after each negotiation of the transceiver).

        :param outlet: The outlet of this track's sender.
        """
        self._outlet = outlet
        mid = outlet.mid.encode()
        self._mid_element = (
            bytes([outlet.mid_id << 4 | (len(mid) - 1)]) + mid if outlet.mid_id and mid else b""
        )
        self._abs_send_time_prefix = (
            bytes([outlet.abs_send_time_id << 4 | 2]) if outlet.abs_send_time_id else b""
        )
        self._audio_level_id = outlet.audio_level_id or 0

    def attach(self, receiver: TrackReceiver) -> None:
        """
        Feed this track from `receiver`, starting at its next keyframe.

        :param receiver: The receiver of a published track.
        """
        if receiver is self._receiver:
            return
        self.detach()
        self._receiver = receiver
        self.resync()
        receiver.add(self)

    def detach(self) -> None:
        """Stop feeding this track; the subscriber sees a pause."""
        if self._receiver is not None:
            self._receiver.remove(self)
            self._receiver = None
            self.resync()

    def resync(self) -> None:
        """Wait for a keyframe and start a new segment, as after a pause."""
        self._needs_keyframe = True
        self._rewriter.restart()

    def request_keyframe(self) -> None:
        """The subscriber asked for a keyframe (PLI or FIR): ask the publisher."""
        if self._receiver is not None:
            self._receiver.request_keyframe()

    def forward(
        self,
        packet: RtpPacket,
        keyframe: bool,
        pictures: PictureNumbers | None,
        now: float,
        ntp_time: int,
        abs_send_time: bytes,
    ) -> None:
        """
        Rewrite one packet of the published track for this subscriber and send it.

        :param packet: The publisher's packet, as received.
        :param keyframe: Whether a decoder can start at this packet.
        :param pictures: Its picture numbers, if its codec has them (a VP8 PictureID).
        :param now: Its arrival time in seconds (monotonic clock).
        :param ntp_time: The current time as a 64-bit NTP time.
        :param abs_send_time: The current time as a 3-byte abs-send-time value.
        """
        outlet = self._outlet
        if outlet is None:
            return
        payload = packet.payload
        if self._paused:
            return
        if self._needs_keyframe:
            if not keyframe:
                return
            self._needs_keyframe = False
        rewriter = self._rewriter
        if (
            pictures is not None
            and pictures.temporal_id is not None
            and not self._layers.accept(pictures, keyframe)
        ):
            rewriter.drop(packet.sequence_number, pictures)
            return
        seq, ts = rewriter.rewrite(packet.sequence_number, packet.timestamp, now, pictures)
        self.bytes_sent += len(payload)
        if pictures is not None:
            payload = pictures.rewrite(payload, rewriter.picture_offset, rewriter.tl0_offset)
        elements = self._mid_element
        if self._abs_send_time_prefix:
            elements += self._abs_send_time_prefix + abs_send_time
        level = packet.extensions.audio_level
        if level is not None and self._audio_level_id:
            elements += bytes([self._audio_level_id << 4, (0x80 if level[0] else 0) | level[1]])
        if elements:
            padding = -len(elements) % 4
            header = (
                _HEADER.pack(0x90, packet.marker << 7 | outlet.payload_type, seq, ts, outlet.ssrc)
                + _EXTENSION_PROFILE
                + ((len(elements) + padding) >> 2).to_bytes(2, "big")
                + elements
                + b"\x00" * padding
            )
        else:
            header = _HEADER.pack(
                0x80, packet.marker << 7 | outlet.payload_type, seq, ts, outlet.ssrc
            )
        data = header + payload
        self._history[seq % HISTORY] = (seq, len(header), data)
        outlet.send(data, ts, ntp_time, len(payload))

    def retransmit(self, sequence_number: int) -> None:
        """
        Send again a packet the subscriber reports lost, as RTX when negotiated.

        :param sequence_number: The sequence number it was sent with.
        """
        outlet = self._outlet
        kept = self._history[sequence_number % HISTORY]
        if outlet is None or kept is None or kept[0] != sequence_number:
            return
        _, header_size, data = kept
        if outlet.rtx_payload_type is None:
            outlet.resend(data)
            return
        header = bytearray(data[:header_size])
        header[1] = (header[1] & 0x80) | outlet.rtx_payload_type
        struct.pack_into("!H", header, 2, self._rtx_sequence_number)
        struct.pack_into("!I", header, 8, outlet.rtx_ssrc)
        self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
        outlet.resend(bytes(header) + data[2:4] + data[header_size:])

    async def recv(self) -> NoReturn:
        """Wait until the track ends: packets never pass through the sender."""
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        """End the track and wake a pending :meth:`recv`."""
        self.detach()
        super().stop()
        self._ended.set()
