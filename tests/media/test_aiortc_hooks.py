"""Fails loudly when an aiortc or aioice upgrade moves what media/aiortc_hooks.py relies on."""

from __future__ import annotations

import asyncio
import fractions
import inspect
import threading

import aioice.ice
import aiortc.rtcdtlstransport
import aiortc.rtcrtpreceiver
import av
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    VideoStreamTrack,
)
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
)

from media import aiortc_hooks
from media.codecs import VP8
from media.peer import MediaConfig, create_peer_connection


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_private_names_are_where_the_hooks_expect_them() -> None:
    assert aiortc.__version__ == "1.16.0"
    assert parameters(aioice.ice.get_host_addresses) == ["use_ipv4", "use_ipv6"]
    assert parameters(aiortc_hooks._original_decoder_worker) == [
        "loop",
        "input_q",
        "output_q",
        "decode_error",
    ]
    assert parameters(RTCRtpReceiver._send_rtcp_pli) == ["self", "media_ssrc"]
    assert parameters(RTCRtpSender._send_keyframe) == ["self"]
    assert parameters(aiortc_hooks._original_register_rtp_receiver) == [
        "self",
        "receiver",
        "parameters",
    ]
    assert "self._rtp_router.register_receiver(" in inspect.getsource(
        aiortc_hooks._original_register_rtp_receiver
    )
    assert "self.ssrc_table.get(packet.ssrc)" in inspect.getsource(
        aiortc.rtcdtlstransport.RtpRouter.route_rtp
    )
    receive_source = inspect.getsource(RTCRtpReceiver.receive)
    assert "target=decoder_worker" in receive_source
    assert "self.__decoder_queue" in receive_source
    handle_source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle_source
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self.__jitter_buffer.add(packet)" in handle_source
    assert "packet._data = depayload(" in handle_source
    run_rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name}" in run_rtcp, name
    assert "self._tx_srtp.protect(data)" in inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._connection.send" in inspect.getsource(RTCIceTransport.__init__)
    assert "self._nominated.get(component)" in inspect.getsource(aioice.Connection.sendto)
    assert "active_pair.protocol.send_data" in inspect.getsource(aioice.Connection.sendto)
    assert ".pack(data)" in inspect.getsource(RTCRtpSender._next_encoded_frame)


async def test_receiver_and_transceiver_hold_the_private_attributes() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        receiver = transceiver.receiver
        for name in ("__decoder_queue", "__decoder_thread", "__rtx_ssrc", "__jitter_buffer"):
            assert hasattr(receiver, f"_RTCRtpReceiver{name}"), name
        assert hasattr(transceiver, "_codecs")
        assert hasattr(transceiver, "_headerExtensions")
        sender = pc.addTransceiver("video", direction="sendonly").sender
        for name in ("_ssrc", "_rtx_ssrc", "_RTCRtpSender__ntp_timestamp"):
            assert hasattr(sender, name), name
        assert hasattr(sender.transport, "_state")
        assert hasattr(sender.transport.transport, "_connection")
        assert isinstance(sender.transport.transport._connection._nominated, dict)
    finally:
        await pc.close()


async def test_host_addresses_include_loopback_when_configured() -> None:
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    aiortc_hooks.use_host_addresses(["127.0.0.1"])  # idempotent
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == []

    connection = aioice.Connection(ice_controlling=True, stun_server=None)
    try:
        await connection.gather_candidates()
        hosts = {c.host for c in connection.local_candidates if c.type == "host"}
        assert hosts == {"127.0.0.1"}
    finally:
        await connection.close()


def test_empty_host_addresses_restore_aioice_discovery() -> None:
    aiortc_hooks.use_host_addresses([])
    try:
        found = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
        assert found == aiortc_hooks._original_get_host_addresses(use_ipv4=True, use_ipv6=False)
        assert "127.0.0.1" not in found
    finally:
        aiortc_hooks.use_host_addresses(["127.0.0.1"])


async def test_tapped_receiver_delivers_encoded_frames_and_never_decodes() -> None:
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames: list[JitterFrame] = []
    ended = asyncio.Event()
    keyframe_requests: list[str] = []
    receivers: list[RTCRtpReceiver] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        codec = aiortc_hooks.negotiated_codec(transceiver)
        assert codec is not None and codec.mimeType == "video/VP8"
        receivers.append(transceiver.receiver)
        aiortc_hooks.tap_encoded_frames(
            transceiver.receiver, lambda codec, frame: frames.append(frame), ended.set
        )

    try:
        sender = sender_pc.addTrack(VideoStreamTrack())
        aiortc_hooks.on_keyframe_request(sender, lambda: keyframe_requests.append("pli"))
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)

        for _ in range(100):
            if len(frames) >= 5:
                break
            await asyncio.sleep(0.05)
        assert len(frames) >= 5
        assert VP8.is_keyframe(frames[0].data)
        assert not any(t.name == "video-decoder" and t.is_alive() for t in threading.enumerate())
        with pytest.raises(RuntimeError):
            aiortc_hooks.tap_encoded_frames(receivers[0], lambda c, f: None, lambda: None)

        assert await aiortc_hooks.send_picture_loss(receivers[0])
        for _ in range(40):
            if keyframe_requests:
                break
            await asyncio.sleep(0.05)
        assert keyframe_requests == ["pli"]
    finally:
        await receiver_pc.close()
        await sender_pc.close()
    assert ended.is_set()


async def test_sender_reports_pli_and_fir_to_the_hook() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        requests: list[int] = []
        aiortc_hooks.on_keyframe_request(sender, lambda: requests.append(1))
        for fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            packet = RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc)
            await sender._handle_rtcp_packet(packet)
        assert len(requests) == 2
    finally:
        await pc.close()


@pytest.mark.parametrize(("mime_type", "clock_rate"), [("video/VP8", 90000), ("audio/opus", 48000)])
def test_encoders_pack_packets_with_their_timestamp_untouched(
    mime_type: str, clock_rate: int
) -> None:
    kind = mime_type.split("/")[0]
    codec = next(c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType == mime_type)
    encoder = get_encoder(codec)  # type: ignore[arg-type]
    packet = av.Packet(b"\x10" * 3000)
    packet.pts = (1 << 32) + 12345
    packet.time_base = fractions.Fraction(1, clock_rate)
    payloads, timestamp = encoder.pack(packet)
    assert payloads and timestamp == packet.pts
    if kind == "video":
        first_picture_id = encoder.picture_id  # type: ignore[attr-defined]
        encoder.pack(packet)
        # The sender's encoder numbers pictures itself, whichever source feeds it.
        assert encoder.picture_id == (first_picture_id + 1) % (1 << 15)  # type: ignore[attr-defined]


class SilentTrack(MediaStreamTrack):
    """A track the sender reads nothing from, as for forwarded streams."""

    kind = "video"

    async def recv(self) -> av.Packet:
        await asyncio.Event().wait()
        raise AssertionError


async def test_outlet_packets_reach_the_peer_and_nacks_reach_the_hook() -> None:
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received: list[tuple[RtpPacket, bytes]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        aiortc_hooks.tap_rtp_packets(
            transceiver.receiver, lambda packet, data: received.append((packet, data)), False
        )

    try:
        transceiver = sender_pc.addTransceiver(SilentTrack(), direction="sendonly")
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        for _ in range(100):
            if sender_pc.connectionState == "connected":
                break
            await asyncio.sleep(0.05)

        outlet = aiortc_hooks.RtpOutlet(transceiver)
        assert outlet.payload_type == aiortc_hooks.negotiated_codec(transceiver).payloadType  # type: ignore[union-attr]
        assert outlet.rtx_payload_type is not None and outlet.mid == transceiver.mid
        assert outlet.mid_id and outlet.abs_send_time_id
        payload = b"\x90\x80\x80\x05" + b"\x10\x02\x00\x9d\x01\x2a"
        for seq in range(3):
            packet = RtpPacket(
                payload_type=outlet.payload_type,
                sequence_number=seq,
                timestamp=90000,
                ssrc=outlet.ssrc,
                payload=payload,
            )
            outlet.send(packet.serialize(), 90000, 1 << 32, len(payload))
        for _ in range(40):
            if len(received) == 3:
                break
            await asyncio.sleep(0.05)
        assert [p.sequence_number for p, _ in received] == [0, 1, 2]
        assert received[0][1] == payload[4:]  # the descriptor is gone from the data
        assert transceiver.sender._RTCRtpSender__packet_count == 3  # type: ignore[attr-defined]

        lost: list[int] = []
        aiortc_hooks.on_retransmission_request(transceiver.sender, lost.append)
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=outlet.ssrc)
        nack.lost = [1, 2]
        await transceiver.sender._handle_rtcp_packet(nack)
        assert lost == [1, 2]
    finally:
        await receiver_pc.close()
        await sender_pc.close()


async def test_retransmissions_reach_their_receiver_when_two_videos_share_the_transport() -> None:
    # aiortc routes RTX by payload type alone: with two video receivers it dropped every one.
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    aiortc_hooks.route_retransmissions()
    sender_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    received: dict[str, list[int]] = {}

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in receiver_pc.getTransceivers() if t.receiver.track is track)
        numbers = received.setdefault(transceiver.mid or "", [])
        aiortc_hooks.tap_rtp_packets(
            transceiver.receiver, lambda packet, data: numbers.append(packet.sequence_number), False
        )

    try:
        camera = sender_pc.addTransceiver(SilentTrack(), direction="sendonly")
        screen = sender_pc.addTransceiver(SilentTrack(), direction="sendonly")
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        for _ in range(100):
            if sender_pc.connectionState == "connected":
                break
            await asyncio.sleep(0.05)

        payload = b"\x90\x80\x80\x05" + b"\x10\x02\x00\x9d\x01\x2a"
        for transceiver in (camera, screen):
            outlet = aiortc_hooks.RtpOutlet(transceiver)
            assert outlet.rtx_payload_type is not None
            for seq in (0, 2):  # 1 is lost on the way
                packet = RtpPacket(
                    payload_type=outlet.payload_type,
                    sequence_number=seq,
                    timestamp=90000,
                    ssrc=outlet.ssrc,
                    payload=payload,
                )
                outlet.send(packet.serialize(), 90000, 1 << 32, len(payload))
            retransmission = RtpPacket(
                payload_type=outlet.rtx_payload_type,
                sequence_number=0,
                timestamp=90000,
                ssrc=outlet.rtx_ssrc,
                payload=b"\x00\x01" + payload,  # RFC 4588: the original sequence number first
            )
            outlet.resend(retransmission.serialize())
        for _ in range(40):
            if all(len(numbers) == 3 for numbers in received.values()):
                break
            await asyncio.sleep(0.05)
        assert received == {camera.mid: [0, 2, 1], screen.mid: [0, 2, 1]}
    finally:
        await receiver_pc.close()
        await sender_pc.close()


def test_aioice_consent_is_where_the_consent_hook_expects_it() -> None:
    start = inspect.getsource(aioice.ice.Connection.connect)
    assert "self._query_consent_task = asyncio.create_task(self.query_consent())" in start
    original = inspect.getsource(aioice.ice.Connection.query_consent)
    for name in ("self._nominated.values()", "self.build_request(pair, nominate=False)"):
        assert name in original or aioice.ice.Connection.query_consent.__name__ == "query_consent"
    assert parameters(aioice.ice.Connection.build_request) == ["self", "pair", "nominate"]
    assert "remote_password" in inspect.getsource(aioice.ice.Connection.__init__)


async def _connected_pair() -> tuple[aioice.ice.Connection, aioice.ice.Connection]:
    """Two ICE agents of this process connected over loopback."""
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    controlling = aioice.ice.Connection(ice_controlling=True)
    controlled = aioice.ice.Connection(ice_controlling=False)
    for agent in (controlling, controlled):
        await agent.gather_candidates()
    for agent, other in ((controlling, controlled), (controlled, controlling)):
        agent.remote_username, agent.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
    await asyncio.gather(controlling.connect(), controlled.connect())
    return controlling, controlled


def _delay_everything_received(agent: aioice.ice.Connection, seconds: float | None) -> None:
    """Make `agent` read every datagram `seconds` late (None: never), as a busy loop would."""
    loop = asyncio.get_running_loop()
    for protocol in agent._protocols:
        received = protocol.datagram_received

        def late(data: bytes, addr: tuple[str, int], received=received) -> None:  # type: ignore[no-untyped-def]
            if seconds is not None:
                loop.call_later(seconds, received, data, addr)

        protocol.datagram_received = late  # type: ignore[method-assign]


async def test_ice_keeps_consent_while_the_answers_come_late() -> None:
    aiortc_hooks.tolerate_consent_delays(interval=0.2, expiry=2.0)
    try:
        checker, late = await _connected_pair()
        # aioice would give each check 0.5 s and close after six late answers (about 4 s here).
        _delay_everything_received(late, 0.8)
        await asyncio.sleep(6.0)
        await checker.send(b"still connected")
        assert await asyncio.wait_for(late.recv(), 5) == b"still connected"
    finally:
        aiortc_hooks.tolerate_consent_delays()
        aiortc_hooks.use_host_addresses([])
        for agent in (checker, late):
            await agent.close()


async def test_ice_consent_expires_when_nothing_answers() -> None:
    aiortc_hooks.tolerate_consent_delays(interval=0.2, expiry=1.0)
    try:
        checker, silent = await _connected_pair()
        _delay_everything_received(silent, None)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(checker.recv(), 10)
    finally:
        aiortc_hooks.tolerate_consent_delays()
        aiortc_hooks.use_host_addresses([])
        for agent in (checker, silent):
            await agent.close()


async def test_server_connections_share_one_certificate_and_still_connect() -> None:
    aiortc_hooks.use_host_addresses(["127.0.0.1"])
    aiortc_hooks.share_certificate()
    servers = [create_peer_connection(MediaConfig()) for _ in range(2)]
    browsers = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    for browser in browsers:  # each browser its own certificate, as a real one has
        browser._RTCPeerConnection__certificates = [  # type: ignore[attr-defined]
            aiortc.rtcdtlstransport.RTCCertificate.generateCertificate()
        ]
    try:
        for server, browser in zip(servers, browsers, strict=True):
            browser.addTransceiver(VideoStreamTrack(), direction="sendonly")
            await browser.setLocalDescription(await browser.createOffer())
            await server.setRemoteDescription(browser.localDescription)
            await server.setLocalDescription(await server.createAnswer())
            await browser.setRemoteDescription(server.localDescription)
        fingerprints = [
            [line for line in pc.localDescription.sdp.splitlines() if "fingerprint" in line]
            for pc in (*servers, *browsers)
        ]
        assert fingerprints[0] == fingerprints[1]
        assert fingerprints[2] != fingerprints[0] and fingerprints[3] != fingerprints[0]
        for _ in range(200):
            if all(pc.connectionState == "connected" for pc in servers):
                break
            await asyncio.sleep(0.05)
        assert [pc.connectionState for pc in servers] == ["connected", "connected"]
        contexts = {
            id(pc.getTransceivers()[0].sender.transport._ssl.get_context()) for pc in servers
        }
        assert len(contexts) == 1
    finally:
        for pc in (*servers, *browsers):
            await pc.close()
