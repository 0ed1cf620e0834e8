"""The one place that reaches into aiortc's and aioice's private names.

aiortc 1.16 is pinned because of this module; ``tests/media/test_aiortc_hooks.py`` fails
loudly when an upgrade moves any of the names or behaviours relied upon here:

* ``aioice.ice.get_host_addresses``: where host candidates come from (it skips 127.0.0.1).
* ``aioice.ice.asyncio.get_running_loop`` (the one call where aioice binds its host
  candidates' UDP sockets, ``create_datagram_endpoint`` with port 0), ``StunProtocol.receiver``,
  ``RTCPeerConnection.__iceTransports`` and ``RTCIceTransport._connection``:
  :func:`bind_in_port_range` binds a server connection's sockets inside a port range.
* ``aioice.ice.Connection.query_consent``, ``Connection._nominated``, ``build_request``,
  ``remote_password`` and ``_query_consent_task``: aioice's consent freshness (RFC 7675);
  :func:`tolerate_consent_delays` replaces it with one that a late answer does not break.
* ``aiortc.rtcrtpreceiver.decoder_worker`` and ``RTCRtpReceiver.__decoder_queue``: the
  receiver hands every reassembled ``(codec, JitterFrame)`` to that queue; a tapped receiver
  gets a queue that delivers to us instead, and its decoder thread returns at once.
* ``RTCRtpReceiver.__jitter_buffer`` and ``RtpPacket._data``: every media packet (RTX
  already unwrapped, its payload depayloaded into ``_data``) goes through the jitter
  buffer's ``add``; a packet tap sees it there first.
* ``RTCRtpReceiver._send_rtcp_pli`` and ``RTCRtpReceiver.__rtx_ssrc``: asking a publisher
  for a keyframe.
* ``RTCRtpSender._send_keyframe``: what the sender calls on an incoming PLI or FIR.
* ``RTCRtpSender._handle_rtcp_packet`` and ``RTCRtpSender.__rtt``: every RTCP packet
  routed to a sender (receiver reports, REMB) passes there, and the round-trip time it
  keeps from them; :func:`on_receiver_feedback` watches both.
* ``RTCDtlsTransport._register_rtp_receiver`` and ``RtpRouter.ssrc_table``: aiortc routes
  an RTX packet by its SSRC, which it never registers, or else by payload type, which
  fails as soon as two video receivers share the transport; :func:`route_retransmissions`
  registers the RTX SSRCs too.
* ``RTCRtpTransceiver._codecs``: the codecs negotiated for a transceiver.
* ``RTCRtpReceiver.__remote_streams``: the receiver's per-SSRC statistics (packets
  expected and received), which :func:`reception_counts` sums for the uplink's loss.
* ``RTCRtpReceiver._send_rtcp`` and ``RTCRtpReceiver.__rtcp_ssrc``: every REMB the
  receiver's bitrate estimator sends to the publisher goes through ``_send_rtcp``;
  :class:`RembLimit` lowers it, and sends one of its own when the limit falls.
* ``aiortc.codecs.CODECS``: the codecs every connection offers and answers with, and their
  format parameters (aiortc answers with its own, not the offerer's);
  :func:`negotiate_opus` adds Opus in-band FEC (and the voice's bit rate) there.
* :class:`RtpOutlet` sends a subscriber's RTP without the sender's packetizer:
  ``RTCRtpTransceiver._headerExtensions``, ``RTCRtpSender._ssrc`` / ``_rtx_ssrc``, the
  sender's RTCP sender-report state (``__ntp_timestamp``, ``__rtp_timestamp``,
  ``__octet_count``, ``__packet_count``), ``RTCDtlsTransport._tx_srtp`` and ``_state``,
  ``RTCIceTransport._connection`` and aioice's ``Connection._nominated`` pairs, whose
  ``protocol.transport`` is the UDP socket. ``RTCRtpSender._retransmit`` answers NACKs.
* :mod:`media.inlet` takes a publisher connection's SRTP where aioice hands it over
  (``aioice.ice.Connection.data_received``, then straight from each of its sockets:
  ``Connection._protocols``, ``StunProtocol.datagram_received`` and ``local_candidate``), and
  uses ``RTCDtlsTransport._rx_srtp``, ``_rtp_header_extensions_map`` (and that map's
  ``HeaderExtensionsMap.__ids``, read by :func:`header_extension_ids`) and ``_rtp_router``; it
  keeps the receiver's ``__remote_streams``, ``__active_ssrc`` and ``__rtx_ssrc`` up to date and
  sends through ``_send_rtcp`` and ``_send_rtcp_nack``, with aiortc's ``NackGenerator``,
  ``StreamStatistics``, ``TimestampMapper`` and ``JitterBuffer``.
  ``tests/media/test_inlet.py`` fails when any of them moves. :mod:`media.estimator` subclasses
  ``aiortc.rate``'s ``RemoteBitrateEstimator``, ``InterArrival`` and ``OveruseEstimator`` (and
  uses ``TimestampGroup``, ``InterArrivalDelta`` and ``OveruseEstimator.ts_delta_hist``);
  ``tests/media/test_estimator.py`` fails when its estimate parts from aiortc's.
* ``aiortc.rtcpeerconnection.RTCCertificate`` (whose ``generateCertificate`` every
  ``RTCPeerConnection`` calls), ``aiortc.rtcdtlstransport.generate_certificate`` and
  ``RTCCertificate._create_ssl_context``: :func:`share_certificate` gives every connection
  of the process one certificate and its OpenSSL contexts.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import queue
import random
import threading
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import aioice.ice
import aioice.stun
import aiortc.codecs
import aiortc.rtcdtlstransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsTransport,
    RtpReceiver,
    SRTPProtectionProfile,
)
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    HeaderExtensions,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from .errors import MediaPortsExhausted

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

EncodedFrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]
"""Receives each reassembled encoded frame of a tapped receiver, on the event loop."""

RtpPacketSink = Callable[[RtpPacket, bytes], None]
"""Receives each media packet of a tapped receiver and its depayloaded data, on the event loop."""

logger = logging.getLogger(__name__)

_original_get_host_addresses = aioice.ice.get_host_addresses
_original_decoder_worker = aiortc.rtcrtpreceiver.decoder_worker
_original_register_rtp_receiver = RTCDtlsTransport._register_rtp_receiver
_host_addresses: list[str] = []


def _configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Replacement for ``aioice.ice.get_host_addresses`` honouring :func:`use_host_addresses`."""
    if not _host_addresses:
        return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [address for address in _host_addresses if (use_ipv6 if ":" in address else use_ipv4)]


def use_host_addresses(addresses: Sequence[str]) -> None:
    """
    Make every ICE agent of this process gather host candidates on `addresses`.

    Unlike aioice's own discovery this includes loopback addresses. Calling it again
    replaces the list; an empty list restores aioice's discovery.

    :param addresses: IPv4 or IPv6 addresses of this machine.
    """
    _host_addresses[:] = addresses
    aioice.ice.get_host_addresses = _configured_host_addresses


#: Server peer connections whose ICE sockets bind inside a range, and that range.
_port_ranges: weakref.WeakKeyDictionary[RTCPeerConnection, tuple[int, int]] = (
    weakref.WeakKeyDictionary()
)


def _range_of(connection: aioice.ice.Connection) -> tuple[int, int] | None:
    """The range of the peer connection `connection` gathers for, if it has one."""
    for pc, ports in list(_port_ranges.items()):
        if any(t._connection is connection for t in pc._RTCPeerConnection__iceTransports):  # type: ignore[attr-defined]
            return ports
    return None


class _RangedLoop:
    """The running loop as aioice's candidate gathering sees it: host sockets of a connection
    with a port range bind inside it; everything else passes through."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_datagram_endpoint(
        self, factory: Callable[[], asyncio.DatagramProtocol], local_addr: tuple[str, int]
    ) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        protocol = factory()
        ports = _range_of(protocol.receiver) if local_addr[1] == 0 else None  # type: ignore[attr-defined]
        if ports is None:
            return await self._loop.create_datagram_endpoint(lambda: protocol, local_addr)
        first, last = ports
        start = random.randint(first, last)  # spread connections over the range
        for port in [*range(start, last + 1), *range(first, start)]:
            try:
                return await self._loop.create_datagram_endpoint(
                    lambda: protocol, (local_addr[0], port)
                )
            except OSError:
                continue  # taken: the next one
        raise MediaPortsExhausted(first, last)


def _aioice_asyncio() -> types.SimpleNamespace:
    """``asyncio`` as :mod:`aioice.ice` sees it, with :class:`_RangedLoop` as its loop."""
    namespace = types.SimpleNamespace(**vars(asyncio))
    namespace.get_running_loop = lambda: _RangedLoop(asyncio.get_running_loop())
    return namespace


def bind_in_port_range(pc: RTCPeerConnection, ports: tuple[int, int]) -> None:
    """
    Make `pc`'s ICE host candidates bind UDP ports in ``ports`` (first, last), both included.

    Gathering raises :class:`~media.errors.MediaPortsExhausted` when none is free. aioice 0.13
    has no port range of its own.

    :param pc: A server peer connection, before it gathers.
    :param ports: The first and last port of the range.
    """
    _port_ranges[pc] = ports
    if not isinstance(aioice.ice.asyncio, types.SimpleNamespace):  # type: ignore[attr-defined]
        aioice.ice.asyncio = _aioice_asyncio()  # type: ignore[attr-defined,assignment]


def _register_rtp_receiver_and_rtx(
    transport: RTCDtlsTransport, receiver: RtpReceiver, parameters: RTCRtpReceiveParameters
) -> None:
    """Replacement for ``RTCDtlsTransport._register_rtp_receiver`` that routes RTX too."""
    _original_register_rtp_receiver(transport, receiver, parameters)
    for encoding in parameters.encodings:
        if encoding.rtx is not None:
            transport._rtp_router.ssrc_table[encoding.rtx.ssrc] = receiver


def header_extension_ids(extensions_map: HeaderExtensionsMap) -> HeaderExtensions:
    """
    The ids a connection negotiated for each RTP header extension (None: not negotiated).

    :param extensions_map: An ``RTCDtlsTransport``'s ``_rtp_header_extensions_map``.
    """
    # Name-mangled private attribute (see the module docstring): undeclared for mypy.
    ids: HeaderExtensions = extensions_map._HeaderExtensionsMap__ids  # type: ignore[attr-defined]
    return ids


def reception_counts(receiver: RTCRtpReceiver) -> tuple[int, int]:
    """
    The packets a receiver expected and received so far, over every stream it got.

    :param receiver: An :class:`RTCRtpReceiver`.
    :return: ``(expected, received)``; their difference is what the uplink lost.
    """
    # Name-mangled private attribute (see the module docstring): undeclared for mypy.
    streams = receiver._RTCRtpReceiver__remote_streams.values()  # type: ignore[attr-defined]
    return sum(s.packets_expected for s in streams), sum(s.packets_received for s in streams)


class RembLimit:
    """
    Caps the REMB a publisher's video receiver sends, so the publisher sends no more.

    aiortc's receiver estimates the publisher's uplink (abs-send-time) and reports it by
    REMB; each report passes here, is raised by :attr:`others` and lowered to :attr:`limit`.
    When the limit falls under what was last reported, a REMB at the limit goes out at once.
    aiortc's estimate is of this receiver's stream alone, and never much above what it
    receives, while the browser takes a REMB as the cap of all the video it sends: without
    :attr:`others` the connection's other videos would take their share of it from this one,
    which would then receive less, estimate less, and starve.

    :param receiver: A video :class:`RTCRtpReceiver`, before or after it starts.
    """

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._send = receiver._send_rtcp
        self.limit: int | None = None
        self.others = 0
        """Bit/s of the connection's other videos (whose receivers are silent), added to
        each estimate reported."""
        self.silent = False
        """True to send no REMB at all (another receiver of the connection speaks for it)."""
        self.reported: int | None = None
        """The bit rate of the latest REMB sent."""
        self._task: asyncio.Task[None] | None = None
        # Replacing the receiver's method is the point here; mypy refuses it by default.
        receiver._send_rtcp = self._send_capped  # type: ignore[method-assign]

    def set_limit(self, limit: int | None) -> None:
        """
        Cap the reported bit rate at `limit` (None: no cap), telling the publisher now if lower.

        :param limit: Bit/s.
        """
        self.limit = limit
        if self.silent:
            return
        if limit is not None and (self.reported is None or limit < self.reported):
            # Name-mangled private attribute (see the module docstring): undeclared for mypy.
            rtcp_ssrc = self._receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
            ssrcs = [s.source for s in self._receiver.getSynchronizationSources()]
            if rtcp_ssrc is None or not ssrcs:
                return
            remb = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(limit, ssrcs)
            )
            self._task = asyncio.ensure_future(self._send_capped(remb))

    async def _send_capped(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            if self.silent:
                return
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if ssrcs:
                bitrate += self.others
                if self.limit is not None:
                    bitrate = min(bitrate, self.limit)
                if self.others or self.limit is not None:
                    packet = RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=packet.ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(bitrate, ssrcs),
                    )
                self.reported = bitrate
        await self._send(packet)


OPUS_PARAMETERS = {"minptime": 10, "useinbandfec": 1}
"""The Opus format parameters of every connection: in-band FEC, as browsers offer it."""


def negotiate_opus(voice_bitrate: int = 0) -> None:
    """
    Make every connection of this process negotiate Opus with in-band FEC, both ways, and ask
    publishers for `voice_bitrate`.

    aiortc answers and offers with its own format parameters, which for Opus are none, so a
    browser publishing to the server would send no forward error correction and audio would
    not survive loss. A browser's encoder follows the receiver's ``maxaveragebitrate``: at
    Chrome's own 32 kbit/s, in 50 packets a second, one voice takes about 60 kbit/s on the
    wire, all of a 60 kbit/s link. Calling it again is harmless.

    :param voice_bitrate: The Opus bit rate (bit/s) to ask for; 0: the browser's own.
    """
    parameters: dict[str, str | int | None] = dict(OPUS_PARAMETERS)
    if voice_bitrate:
        parameters["maxaveragebitrate"] = voice_bitrate
    for codec in aiortc.codecs.CODECS["audio"]:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = parameters


def route_retransmissions() -> None:
    """
    Make every connection of this process deliver retransmissions (RTX) to their receiver.

    aiortc 1.16 drops every RTX packet of a connection that bundles two or more video
    receivers (a camera and a screen share, or a subscriber's several cameras), so a NACK
    never repairs a loss there. Receivers registered after this call also own their RTX
    SSRCs (from the remote description's ``ssrc-group:FID``). Calling it again is harmless.
    """
    # Replacing a method of aiortc's class is the point here; mypy refuses it by default, and
    # compares the plain function with the method as bound to an instance.
    RTCDtlsTransport._register_rtp_receiver = _register_rtp_receiver_and_rtx  # type: ignore[method-assign,assignment]


class _EncodedFrameTap(queue.Queue[tuple[RTCRtpCodecParameters, JitterFrame] | None]):
    """
    Stands in for a receiver's decoder queue and hands frames to a sink instead.

    ``put`` is called on the event loop by ``RTCRtpReceiver._handle_rtp_packet`` with
    ``(codec, JitterFrame)``, and with ``None`` when the receiver stops.

    :param sink: Called with each encoded frame.
    :param on_end: Called once when the receiver stops.
    """

    def __init__(self, sink: EncodedFrameSink, on_end: Callable[[], None]) -> None:
        super().__init__()
        self._sink = sink
        self._on_end = on_end

    def put(
        self,
        item: tuple[RTCRtpCodecParameters, JitterFrame] | None,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        if item is None:
            self._on_end()
        else:
            self._sink(item[0], item[1])


def _decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """Replacement for aiortc's ``decoder_worker``: a tapped receiver decodes nothing."""
    if isinstance(input_q, _EncodedFrameTap):
        return
    _original_decoder_worker(loop, input_q, output_q, decode_error)


def tap_encoded_frames(
    receiver: RTCRtpReceiver, sink: EncodedFrameSink, on_end: Callable[[], None]
) -> None:
    """
    Deliver a receiver's encoded frames to `sink` and never decode them.

    Call it before the receiver starts, e.g. from the peer connection's ``track`` event.
    The frames still pass aiortc's NACK, RTX and jitter buffer handling; their timestamps
    are RTP timestamps made relative to the first frame (they may exceed 32 bits).

    :param receiver: An :class:`RTCRtpReceiver` that has not started receiving.
    :param sink: Called on the event loop with ``(codec, JitterFrame)`` per frame.
    :param on_end: Called once when the receiver stops (BYE, disconnect or close).
    """
    # Name-mangled private attributes (see the module docstring): undeclared for mypy.
    if receiver._RTCRtpReceiver__decoder_thread is not None:  # type: ignore[attr-defined]
        raise RuntimeError("the receiver already started decoding")
    aiortc.rtcrtpreceiver.decoder_worker = _decoder_worker
    receiver._RTCRtpReceiver__decoder_queue = _EncodedFrameTap(sink, on_end)  # type: ignore[attr-defined]


class _RtpPacketTap:
    """
    Stands in for a receiver's jitter buffer: shows each packet to a sink first.

    :param buffer: The receiver's own jitter buffer.
    :param sink: Called with each packet and its depayloaded data.
    :param assemble: False to drop packets after the sink instead of assembling frames.
    """

    def __init__(self, buffer: JitterBuffer, sink: RtpPacketSink, assemble: bool) -> None:
        self._buffer = buffer
        self._sink = sink
        self._assemble = assemble

    @property
    def capacity(self) -> int:
        return self._buffer.capacity

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        # aiortc's receiver sets _data on each packet without declaring it in RtpPacket.
        self._sink(packet, packet._data)  # type: ignore[attr-defined]
        if self._assemble:
            return self._buffer.add(packet)
        return False, None


def tap_rtp_packets(receiver: RTCRtpReceiver, sink: RtpPacketSink, assemble: bool = True) -> None:
    """
    Show every media packet a receiver accepts to `sink`, as it arrives.

    The packets have passed SRTP, NACK bookkeeping and RTX unwrapping (a retransmitted
    packet arrives late, under its original sequence number); ``packet.payload`` still
    holds the RTP payload descriptor, the data handed to `sink` does not.

    :param receiver: An :class:`RTCRtpReceiver`, started or not.
    :param sink: Called on the event loop with ``(packet, depayloaded data)``.
    :param assemble: False to skip reassembling frames afterwards (nothing is decoded then).
    """
    name = "_RTCRtpReceiver__jitter_buffer"
    setattr(receiver, name, _RtpPacketTap(getattr(receiver, name), sink, assemble))


async def send_picture_loss(receiver: RTCRtpReceiver) -> bool:
    """
    Send a Picture Loss Indication for the media SSRC most recently received.

    :param receiver: A started :class:`RTCRtpReceiver`.
    :return: False when no media has been received yet, so there is nobody to ask.
    """
    # Name-mangled private attribute (see the module docstring): undeclared for mypy.
    rtx_ssrcs = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    sources = [s for s in receiver.getSynchronizationSources() if s.source not in rtx_ssrcs]
    if not sources:
        return False
    newest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """
    Call `callback` whenever the remote peer sends a PLI or FIR for this sender.

    Senders of pre-encoded packets ignore aiortc's own force-keyframe flag, so the
    request has to travel to whoever produces the packets.

    :param sender: An :class:`RTCRtpSender`.
    :param callback: Called on the event loop for every PLI or FIR.
    """
    # Replacing the sender's method is the point here; mypy refuses it by default.
    sender._send_keyframe = callback  # type: ignore[method-assign]


RembSink = Callable[[int], None]
"""Receives the bit rate (bit/s) of each REMB a subscriber sends about a sender's stream."""

ReportSink = Callable[[int, float, float | None], None]
"""Receives ``(fraction lost in 1/256, jitter in seconds, round-trip time or None)`` per report."""


def on_receiver_feedback(
    sender: RTCRtpSender, clock_rate: int, on_remb: RembSink, on_report: ReportSink
) -> None:
    """
    Show the REMB and receiver reports the remote peer sends about a sender's stream.

    aiortc still handles them afterwards (round-trip time, statistics).

    :param sender: An :class:`RTCRtpSender`.
    :param clock_rate: Its codec's clock rate, to turn jitter into seconds.
    :param on_remb: Called with each REMB bit rate that names this sender's SSRC.
    :param on_report: Called with each receiver report block about this sender's SSRC.
    """
    handle = sender._handle_rtcp_packet

    async def watch(packet: AnyRtcpPacket) -> None:
        await handle(packet)
        ssrc = sender._ssrc
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    # Name-mangled private attribute (see the module docstring).
                    rtt = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
                    on_report(report.fraction_lost, report.jitter / clock_rate, rtt)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                on_remb(bitrate)

    # Replacing the sender's method is the point here; mypy refuses it by default.
    sender._handle_rtcp_packet = watch  # type: ignore[method-assign]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """
    Return the media codec negotiated for a transceiver: the one the remote peer sends.

    :param transceiver: An :class:`RTCRtpTransceiver` after a description was applied.
    """
    return next((c for c in transceiver._codecs if not is_rtx(c)), None)


class RtpOutlet:
    """
    Sends finished RTP packets for one negotiated sender, bypassing its packetizer.

    Each packet is SRTP-protected with the connection's keys and written to the ICE
    pair's UDP socket at once: no coroutine, no copy. The sender's RTCP sender reports
    keep describing what was sent. Build it once the transceiver's description has been
    applied; nothing is sent until DTLS is up.

    :param transceiver: A sending :class:`RTCRtpTransceiver` after negotiation.
    """

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        sender = transceiver.sender
        codecs = transceiver._codecs
        media = next(c for c in codecs if not is_rtx(c))
        extensions = {e.uri: e.id for e in transceiver._headerExtensions}
        if media.payloadType is None:
            raise RuntimeError("the transceiver's codec has no payload type: negotiate first")
        self.payload_type: int = media.payloadType
        self.rtx_payload_type: int | None = next(
            (
                c.payloadType
                for c in codecs
                if is_rtx(c) and c.parameters.get("apt") == media.payloadType
            ),
            None,
        )
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.mid: str = transceiver.mid or ""
        self.mid_id: int | None = extensions.get(MID_URI)
        self.abs_send_time_id: int | None = extensions.get(ABS_SEND_TIME_URI)
        self.audio_level_id: int | None = extensions.get(AUDIO_LEVEL_URI)
        self._sender = sender
        self._dtls = sender.transport
        self._nominated = self._dtls.transport._connection._nominated
        self._packets = 0
        self._octets = 0

    def send(self, packet: bytes, timestamp: int, ntp_time: int, payload_size: int) -> None:
        """
        Protect and send one RTP packet; dropped while the connection is not up.

        :param packet: A whole RTP packet (header, extensions, payload) in clear.
        :param timestamp: Its RTP timestamp, for sender reports.
        :param ntp_time: When it is sent, as a 64-bit NTP time, for sender reports.
        :param payload_size: Its payload's size, for sender reports.
        """
        dtls = self._dtls
        pair = self._nominated.get(1)
        if pair is None or dtls._state is not DtlsState.CONNECTED:
            return
        pair.protocol.transport.sendto(dtls._tx_srtp.protect(packet), pair.remote_addr)
        self._packets += 1
        self._octets += payload_size
        sender = self._sender
        # Name-mangled private attributes (see the module docstring): undeclared for mypy.
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = self._packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = self._octets  # type: ignore[attr-defined]

    def resend(self, packet: bytes) -> None:
        """
        Protect and send a retransmission, which sender reports do not count.

        :param packet: A whole RTP (or RTX) packet in clear.
        """
        dtls = self._dtls
        pair = self._nominated.get(1)
        if pair is not None and dtls._state is DtlsState.CONNECTED:
            pair.protocol.transport.sendto(dtls._tx_srtp.protect(packet), pair.remote_addr)


def on_retransmission_request(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """
    Call `callback` with each sequence number the remote peer reports lost (NACK).

    The sender's own history stays empty when an :class:`RtpOutlet` sends for it.

    :param sender: An :class:`RTCRtpSender`.
    :param callback: Called on the event loop with a lost sequence number.
    """

    async def retransmit(sequence_number: int) -> None:
        callback(sequence_number)

    # Replacing the sender's method is the point here; mypy refuses it by default.
    sender._retransmit = retransmit  # type: ignore[method-assign]


#: RFC 7675: a consent check every 5 s (randomised by ±20 %); consent expires when none has
#: been answered for 30 s. Each check is a STUN transaction with its usual retransmissions.
CONSENT_INTERVAL = 5.0
CONSENT_EXPIRY = 30.0
CONSENT_RETRANSMISSIONS = 3


def tolerate_consent_delays(
    interval: float = CONSENT_INTERVAL, expiry: float = CONSENT_EXPIRY
) -> None:
    """
    Make every ICE connection of this process keep consent while answers merely come late.

    aioice sends each consent check once, gives it 0.5 s, and closes the connection after six
    such misses in a row. A process whose event loop runs late (a busy SFU, a loaded machine)
    reads the answer after that timer, so it drops healthy connections and every participant
    on them loses their media. Here, as RFC 7675 and browsers do, a check is retransmitted and
    consent expires only when no check was answered for ``expiry`` seconds. Calling it again
    changes the timings (tests use short ones).

    :param interval: Seconds between checks (randomised by ±20 %).
    :param expiry: Seconds without an answered check after which the connection closes.
    """

    async def query_consent(connection: aioice.ice.Connection) -> None:
        assert connection.remote_password is not None  # checks start after connect()
        key = connection.remote_password.encode("utf8")
        loop = asyncio.get_running_loop()
        granted = loop.time()
        while True:
            await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
            for pair in list(connection._nominated.values()):
                request = connection.build_request(pair, nominate=False)
                try:
                    await pair.protocol.request(
                        request,
                        pair.remote_addr,
                        integrity_key=key,
                        retransmissions=CONSENT_RETRANSMISSIONS,
                    )
                    granted = loop.time()
                except aioice.stun.TransactionError:
                    pass
            if loop.time() - granted >= expiry:
                logger.info("ICE consent expired: no check answered for %.0f s", expiry)
                connection._query_consent_task = None
                await connection.close()
                return

    # Replacing aioice's method is the point here; mypy refuses it, and its self type differs.
    aioice.ice.Connection.query_consent = query_consent  # type: ignore[method-assign,assignment]


#: A process certificate is replaced once it expires within this margin (aiortc's last 30 days).
CERTIFICATE_RENEWAL = datetime.timedelta(days=1)


class _ProcessCertificate(RTCCertificate):
    """
    The one DTLS certificate of this process, with its fingerprints and SSL contexts made once.

    Browsers keep one certificate per origin too: it authenticates nothing by itself, the
    fingerprint in each SDP does. An OpenSSL context holds no per-connection state (every
    DTLS session gets its own ``SSL.Connection``), so one per SRTP profile list serves all.
    """

    _current: _ProcessCertificate | None = None

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(key, cert)
        self._fingerprints = super().getFingerprints()
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generateCertificate(cls) -> _ProcessCertificate:
        """The process certificate, made on first use and again when it nears its expiry."""
        now = datetime.datetime.now(tz=datetime.UTC)
        if cls._current is None or cls._current.expires - now < CERTIFICATE_RENEWAL:
            key = ec.generate_private_key(ec.SECP256R1())
            cls._current = cls(key, aiortc.rtcdtlstransport.generate_certificate(key))
        return cls._current

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        """The certificate's fingerprints, computed once."""
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        names = tuple(profile.openssl_profile.decode() for profile in srtp_profiles)
        context = self._contexts.get(names)
        if context is None:
            context = self._contexts[names] = super()._create_ssl_context(srtp_profiles)
        return context


def share_certificate() -> None:
    """
    Make every peer connection this process creates from now on use one DTLS certificate.

    aiortc otherwise generates an EC key, signs an X.509 certificate, hashes its fingerprints
    and builds an OpenSSL context for every connection: work repeated on every offer the
    server answers.
    """
    aiortc.rtcpeerconnection.RTCCertificate = _ProcessCertificate  # type: ignore[attr-defined]
