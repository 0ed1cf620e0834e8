"""A publisher connection's RTP taken at the packet level, before aiortc's receive path.

aiortc hands every datagram to a queue, wakes the DTLS transport's task for it, then runs
the receiver's coroutine: jitter buffer, depayloading, per-packet ``datetime`` bookkeeping.
:class:`RtpInlet` instead takes each SRTP packet where aioice receives it and, on the spot,
unprotects, parses and routes it to an :class:`InletStream`, which keeps what the
forwarding path needs (receiver statistics for aiortc's reports, NACKs, REMB estimates,
keyframe requests) and hands the packet to its :class:`TrackReceiver`. Frames are
reassembled only while someone records. DTLS, STUN and RTCP still take aiortc's own path.
The private names it relies on are listed in :mod:`media.aiortc_hooks`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, clock
from aiortc.codecs import depayload, is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics, TimestampMapper
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from .aiortc_hooks import header_extension_ids
from .estimator import UplinkEstimator
from .receiver import NTP_EPOCH, TrackReceiver

logger = logging.getLogger(__name__)

SOURCE_REFRESH = 1.0
"""Seconds between two updates of a receiver's active sources (aiortc keeps them 10 s)."""

REMB_INTERVAL_MS = 200
"""Milliseconds between two REMBs of one track, unless the estimate falls (libwebrtc's)."""

_pending: set[asyncio.Task[None]] = set()

_RTP_HEADER = struct.Struct("!BBHLL")
ONE_BYTE_HEADER = 0xBEDE
"""The profile of RFC 8285's one-byte header extensions, which browsers send."""


def parse_rtp(data: bytes, extensions_map: HeaderExtensionsMap) -> RtpPacket:
    """
    Parse an RTP packet exactly as ``RtpPacket.parse`` does, with fewer calls on the way.

    One-byte header extensions carrying only the MID, abs-send-time and audio level (what a
    browser sends) are read here; any other extension goes through aiortc's own parser.

    :param data: The packet, in clear.
    :param extensions_map: The header extensions negotiated for its connection.
    :raises ValueError: when the packet is malformed.
    """
    size = len(data)
    if size < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, second, sequence_number, timestamp, ssrc = _RTP_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    count = first & 0x0F
    pos = 12 + 4 * count
    if size < pos:
        raise ValueError("RTP packet has truncated CSRC")
    packet = RtpPacket(second & 0x7F, second >> 7, sequence_number, timestamp, ssrc)
    if count:
        packet.csrc = list(struct.unpack_from(f"!{count}L", data, 12))
    if first & 0x10:
        if size < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, length = struct.unpack_from("!HH", data, pos)
        pos += 4
        end = pos + 4 * length
        if size < end:
            raise ValueError("RTP packet has truncated extension value")
        if profile == ONE_BYTE_HEADER:
            packet.extensions = _browser_extensions(data, pos, end, extensions_map)
        else:
            packet.extensions = extensions_map.get(profile, data[pos:end])
        pos = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[pos:-padding]
    else:
        packet.payload = data[pos:]
    return packet


def _browser_extensions(
    data: bytes, pos: int, end: int, extensions_map: HeaderExtensionsMap
) -> HeaderExtensions:
    """The one-byte header extensions in ``data[pos:end]``, read here when a browser's."""
    ids = header_extension_ids(extensions_map)
    values = HeaderExtensions()
    start = pos
    while pos < end:
        byte = data[pos]
        if not byte:
            pos += 1  # padding
            continue
        x_id = byte >> 4
        value_end = pos + 2 + (byte & 0x0F)
        if value_end > end:
            raise ValueError("RTP one-byte header extension value is truncated")
        if x_id == ids.mid:
            values.mid = data[pos + 1 : value_end].decode("utf8")
        elif x_id == ids.abs_send_time and value_end - pos == 4:
            values.abs_send_time = int.from_bytes(data[pos + 1 : value_end], "big")
        elif x_id == ids.audio_level and value_end - pos == 2:
            level = data[pos + 1]
            values.audio_level = (level & 0x80 == 0x80, level & 0x7F)
        else:
            return extensions_map.get(ONE_BYTE_HEADER, data[start:end])
        pos = value_end
    return values


def _spawn(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run an RTCP send (rare: a loss, a new estimate) without waiting, keeping a reference."""
    task = asyncio.ensure_future(coroutine)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


class RembThrottle:
    """
    Lets an estimate go out by REMB at most every interval, or at once when it falls.

    While it sees an overuse, aiortc's estimator gives an estimate with every packet; like
    libwebrtc, a REMB goes out then only when the last is old or the estimate has fallen by
    more than 3 %.

    :param interval_ms: The least time between two REMBs that do not lower the estimate.
    """

    def __init__(self, interval_ms: int = REMB_INTERVAL_MS) -> None:
        self._interval_ms = interval_ms
        self._sent: tuple[int, int] | None = None

    def due(self, bitrate: int, now_ms: int) -> bool:
        """
        Whether `bitrate`, estimated at `now_ms`, goes out; if so it counts as sent.

        :param bitrate: The estimate, bit/s.
        :param now_ms: Its time, in milliseconds.
        """
        sent = self._sent
        if sent is not None and now_ms - sent[0] < self._interval_ms and bitrate > sent[1] * 0.97:
            return False
        self._sent = (now_ms, bitrate)
        return True


class LossTracker(NackGenerator):
    """aiortc's NACK generator, which forgets old losses only when it remembers some."""

    def truncate(self) -> None:
        """Forget the losses too old to be retransmitted (aiortc's 128 packets)."""
        if self.missing:
            super().truncate()


class InletStream:
    """
    The packets of one published track: aiortc's receiver bookkeeping, then the forwarding.

    :param receiver: The track's :class:`RTCRtpReceiver`; it keeps sending the receiver
        reports and answers :func:`media.aiortc_hooks.send_picture_loss` from what is kept here.
    :param codecs: The codecs negotiated for its transceiver.
    :param track: Forwards the packets to the down tracks and frames to recorders.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        codecs: list[RTCRtpCodecParameters],
        track: TrackReceiver,
    ) -> None:
        self._receiver = receiver
        self._track = track
        self._codecs = {c.payloadType: c for c in codecs}
        # An RTX payload type and the payload type it retransmits (None: none usable), once.
        self._rtx: dict[int | None, int | None] = {}
        for codec in codecs:
            if is_rtx(codec):
                apt = codec.parameters.get("apt")
                usable = isinstance(apt, int) and apt in self._codecs
                self._rtx[codec.payloadType] = apt if usable else None  # type: ignore[assignment]
        self._media_type = track.codec.payloadType
        video = track.kind == "video"
        self._nacks = LossTracker() if video else None
        self._estimator = UplinkEstimator() if video else None
        # Name-mangled private attributes (see media.aiortc_hooks): undeclared for mypy.
        self._statistics: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        self._sources: dict[int, datetime.datetime] = receiver._RTCRtpReceiver__active_ssrc  # type: ignore[attr-defined]
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        self._seen: dict[int, float] = {}
        self._buffer: JitterBuffer | None = None
        self._timestamps = TimestampMapper()
        self._remb_throttle = RembThrottle()

    def handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """
        Take one RTP packet of this track (RTX included), as aiortc's receiver would.

        :param packet: The parsed packet, in clear.
        :param arrival_time_ms: When it arrived, for the bit rate estimator.
        """
        receiver = self._receiver
        estimator = self._estimator
        ssrc = packet.ssrc
        abs_send_time = packet.extensions.abs_send_time
        if estimator is not None and abs_send_time is not None:
            size = len(packet.payload) + packet.padding_size
            remb = estimator.add(arrival_time_ms, abs_send_time, size, ssrc)
            if remb is not None and self._remb_throttle.due(remb[0], arrival_time_ms):
                self._send_remb(*remb)
        now = arrival_time_ms / 1000
        if now - self._seen.get(ssrc, -SOURCE_REFRESH) >= SOURCE_REFRESH:
            self._seen[ssrc] = now
            self._sources[ssrc] = clock.current_datetime()
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        statistics = self._statistics.get(ssrc)
        if statistics is None:
            statistics = self._statistics[ssrc] = StreamStatistics(codec.clockRate)
        statistics.add(packet)
        rtx = self._rtx
        if packet.payload_type in rtx:
            original = self._rtx_ssrc.get(ssrc)
            apt = rtx[packet.payload_type]
            if original is None or apt is None or len(packet.payload) < 2:
                return
            codec = self._codecs[apt]
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original)
        nacks = self._nacks
        if nacks is not None and nacks.add(packet):
            _spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(nacks.missing)))
        track = self._track
        if packet.payload_type != self._media_type:
            return
        records = track.records
        data = b""
        # Depayloaded only for someone who reads it: a down track's keyframe test, a recorder.
        if packet.payload and (records or track.down_tracks):
            try:
                data = depayload(codec, packet.payload)
            except ValueError:
                return
        track.on_packet(packet, data)
        if records:
            self._assemble(codec, packet, data)
        else:
            self._buffer = None

    def _send_remb(self, bitrate: int, ssrcs: list[int]) -> None:
        receiver = self._receiver
        rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        if rtcp_ssrc is not None:
            fci = pack_remb_fci(bitrate, ssrcs)
            remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
            # Through _send_rtcp, which RembLimit caps.
            _spawn(receiver._send_rtcp(remb))

    def _assemble(self, codec: RTCRtpCodecParameters, packet: RtpPacket, data: bytes) -> None:
        """Reassemble frames for the recorders, only while there are any."""
        buffer = self._buffer
        if buffer is None:
            video = self._track.kind == "video"
            buffer = self._buffer = (
                JitterBuffer(capacity=512, is_video=True)
                if video
                else JitterBuffer(capacity=16, prefetch=4)
            )
        packet._data = data  # type: ignore[attr-defined]
        picture_loss, frame = buffer.add(packet)
        if picture_loss:
            self._track.request_keyframe()
        if frame is not None:
            frame.timestamp = self._timestamps.map(frame.timestamp)
            self._track.on_frame(codec, frame)


class RtpInlet:
    """
    Receives a connection's SRTP media packets as aioice hands them over, for its streams.

    One per DTLS transport, installed on its ICE connection when the first stream is added.
    A packet for a receiver without a stream (or any packet before the keys exist) goes on
    through aiortc as before. From the first datagram on (the connection's sockets exist by
    then, not when the inlet is made), one that is RTP or RTCP by its first byte (RFC 7983)
    comes here straight from its socket: aioice would first try to parse it as STUN, raising
    and catching an exception for every media packet.

    :param transport: The :class:`RTCDtlsTransport` all the connection's media shares.
    """

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._dtls = transport
        self._streams: dict[object, InletStream] = {}
        self._connection = connection = transport.transport._connection
        self._fallback: Callable[[bytes, int], None] = connection.data_received
        # Replacing aioice's method on this one connection is the point here.
        connection.data_received = self._first_data_received  # type: ignore[method-assign]
        self.packets = 0
        """Media packets taken here so far."""

    def add(self, stream_of: RTCRtpReceiver, stream: InletStream) -> None:
        """
        Take the packets aiortc would route to `stream_of` and give them to `stream`.

        :param stream_of: A receiver of this connection.
        :param stream: What handles its packets.
        """
        self._streams[stream_of] = stream

    def _first_data_received(self, data: bytes, component: int) -> None:
        connection = self._connection
        connection.data_received = self._data_received  # type: ignore[method-assign]
        for protocol in connection._protocols:
            self._take_media_from(protocol)
        self._data_received(data, component)

    def _take_media_from(self, protocol: StunProtocol) -> None:
        """Receive `protocol`'s RTP and RTCP here, leaving it STUN, DTLS and the rest."""
        stun_or_dtls = protocol.datagram_received
        component = protocol.local_candidate.component
        media = self._data_received

        def datagram_received(data: bytes | str, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192:  # type: ignore[operator]
                media(data, component)  # type: ignore[arg-type]
            else:
                stun_or_dtls(data, addr)

        # Replacing aioice's method on this one protocol is the point here.
        protocol.datagram_received = datagram_received  # type: ignore[method-assign]

    def _data_received(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        srtp = dtls._rx_srtp
        # SRTP only (RFC 5761 section 4: RTCP by its packet type): SRTCP, DTLS and the rest
        # go to aiortc's queue.
        if srtp is None or len(data) < 2 or not 127 < data[0] < 192 or 191 < data[1] < 209:
            self._fallback(data, component)
            return
        try:
            clear = srtp.unprotect(data)
            packet = parse_rtp(clear, dtls._rtp_header_extensions_map)
        except (pylibsrtp.Error, ValueError, struct.error):
            return
        # aiortc's clock.current_ms without its datetime arithmetic.
        arrival_time_ms = int(time.time() * 1000) + NTP_EPOCH * 1000
        receiver = dtls._rtp_router.route_rtp(packet)
        stream = self._streams.get(receiver)
        if stream is None:
            if receiver is not None:
                _spawn(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms))
            return
        self.packets += 1
        stream.handle(packet, arrival_time_ms)
