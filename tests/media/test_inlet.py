"""A publisher's packets taken at the RTP level: forwarded, NACKed, reported, recorded."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aioice.stun
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import depayload
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
    unpack_remb_fci,
)

from media import MediaConfig, MediaServer
from media.aiortc_hooks import (
    RembLimit,
    negotiated_codec,
    reception_counts,
    send_picture_loss,
    tap_encoded_frames,
)
from media.codecs import codec_for
from media.down_track import DownTrack
from media.inlet import REMB_INTERVAL_MS, InletStream, RembThrottle, RtpInlet, parse_rtp
from media.peer import create_peer_connection
from media.receiver import KeyframeRequester, TrackReceiver
from tests.log_scan import register_sdp

from .clients import HANG_GUARD, MovingBarTrack, wait_until
from .test_track_receiver import Wire

VP8 = codec_for("video/VP8")
VP8_CODEC = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


@dataclass
class Feedback:
    """What the publishing client's video sender hears back from the server."""

    nacked: set[int] = field(default_factory=set)
    reports: int = 0
    rembs: list[int] = field(default_factory=list)
    plis: int = 0


@dataclass
class Link:
    """A publishing aiortc client and the server end whose receiver feeds an inlet."""

    client: RTCPeerConnection
    server: RTCPeerConnection
    sender: RTCRtpSender
    receiver: RTCRtpReceiver
    track: TrackReceiver
    inlet: RtpInlet
    remb: RembLimit
    feedback: Feedback
    dropped: list[int]
    drop_next: Callable[[], None]


@pytest.fixture
async def link(media_server: MediaServer) -> AsyncIterator[Link]:
    """One client publishing live-encoded VP8 through a server connection with an inlet."""
    server = create_peer_connection(MediaConfig(addresses=["127.0.0.1"], ice_servers=[]))
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    built: dict[str, object] = {}

    def on_track(track: MediaStreamTrack) -> None:
        transceiver = next(t for t in server.getTransceivers() if t.receiver.track is track)
        receiver = transceiver.receiver
        codec = negotiated_codec(transceiver)
        assert codec is not None

        async def picture_loss() -> bool:
            return await send_picture_loss(receiver)

        track_receiver = TrackReceiver(codec, KeyframeRequester(picture_loss, interval=0.1))
        inlet = RtpInlet(receiver.transport)
        inlet.add(receiver, InletStream(receiver, transceiver._codecs, track_receiver))
        tap_encoded_frames(receiver, track_receiver.on_frame, track_receiver.end)
        built.update(receiver=receiver, track=track_receiver, inlet=inlet, remb=RembLimit(receiver))

    server.on("track", on_track)
    transceiver = client.addTransceiver(MovingBarTrack(), direction="sendonly")
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/VP8", "video/rtx")
        ]
    )
    sender = transceiver.sender
    feedback = Feedback()
    handle = sender._handle_rtcp_packet

    async def watch(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            feedback.nacked.update(packet.lost)
        elif isinstance(packet, RtcpRrPacket):
            feedback.reports += sum(r.ssrc == sender._ssrc for r in packet.reports)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            feedback.rembs.append(unpack_remb_fci(packet.fci)[0])
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
            feedback.plis += 1
        await handle(packet)

    sender._handle_rtcp_packet = watch  # type: ignore[method-assign]

    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(
        RTCSessionDescription(register_sdp(client.localDescription.sdp), "offer")
    )
    await server.setLocalDescription(await server.createAnswer())
    await client.setRemoteDescription(
        RTCSessionDescription(register_sdp(server.localDescription.sdp), "answer")
    )

    # The client's network loses the next video packet once asked to (a NACK repairs it).
    dropped: list[int] = []
    armed = [False]
    dtls = sender.transport
    send_rtp = dtls._send_rtp

    async def lossy_send(data: bytes) -> None:
        if armed[0] and not is_rtcp(data) and int.from_bytes(data[8:12], "big") == sender._ssrc:
            armed[0] = False
            dropped.append(int.from_bytes(data[2:4], "big"))
            return
        await send_rtp(data)

    dtls._send_rtp = lossy_send  # type: ignore[method-assign]

    def drop_next() -> None:
        armed[0] = True

    await wait_until(lambda: "inlet" in built)
    yield Link(
        client,
        server,
        sender,
        built["receiver"],  # type: ignore[arg-type]
        built["track"],  # type: ignore[arg-type]
        built["inlet"],  # type: ignore[arg-type]
        built["remb"],  # type: ignore[arg-type]
        feedback,
        dropped,
        drop_next,
    )
    await client.close()
    await server.close()


def watch_down_track(link: Link) -> Wire:
    down_track, wire = DownTrack("video", 90000), Wire()
    down_track.connect(wire)  # type: ignore[arg-type]
    down_track.attach(link.track)
    return wire


async def test_packets_reach_a_down_track_from_a_keyframe_and_are_counted(link: Link) -> None:
    wire = watch_down_track(link)
    await wait_until(lambda: len(wire.sent) >= 30)
    first = wire.sent[0]
    assert VP8.starts_keyframe(first.payload, depayload(VP8_CODEC, first.payload))
    assert link.inlet.packets >= 30
    expected, received = reception_counts(link.receiver)
    assert received >= 30 and expected >= received


async def test_a_lost_packet_is_nacked_and_its_retransmission_forwarded(link: Link) -> None:
    wire = watch_down_track(link)
    await wait_until(lambda: len(wire.sent) >= 10)
    link.drop_next()
    await wait_until(lambda: bool(link.dropped))
    await wait_until(lambda: link.dropped[0] in link.feedback.nacked)

    async def retransmitted() -> bool:
        stats = (await link.receiver.getStats()).values()
        return any(getattr(s, "ssrc", None) == link.sender._rtx_ssrc for s in stats)

    # The retransmission came as RTX, through the inlet: its stream is counted there.
    await wait_until_async(retransmitted)


async def wait_until_async(condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait until an awaited condition holds, at most the usual hang guard."""
    deadline = time.monotonic() + HANG_GUARD
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_publisher_gets_receiver_reports_and_a_capped_remb(link: Link) -> None:
    await wait_until(lambda: link.feedback.reports >= 1)
    link.remb.set_limit(100_000)
    await wait_until(lambda: 100_000 in link.feedback.rembs)
    rembs_before = len(link.feedback.rembs)
    await wait_until(lambda: len(link.feedback.rembs) > rembs_before)
    assert max(link.feedback.rembs[rembs_before:]) <= 100_000


async def test_a_keyframe_request_reaches_the_publisher_as_a_pli(link: Link) -> None:
    await wait_until(lambda: link.inlet.packets >= 10)
    plis = link.feedback.plis
    link.track.request_keyframe()
    await wait_until(lambda: link.feedback.plis > plis)


async def test_frames_are_reassembled_only_while_recorded(link: Link) -> None:
    frames: list[tuple[bytes, bool]] = []

    def sink(codec: RTCRtpCodecParameters, data: bytes, timestamp: int, keyframe: bool) -> None:
        frames.append((data, keyframe))

    await wait_until(lambda: link.inlet.packets >= 10)
    assert not link.track.records
    link.track.add_sink(sink)
    link.track.request_keyframe()
    await wait_until(lambda: any(keyframe for _, keyframe in frames))
    assert all(VP8.is_keyframe(data) == keyframe for data, keyframe in frames)
    link.track.remove_sink(sink)
    count = len(frames)
    packets = link.inlet.packets
    await wait_until(lambda: link.inlet.packets >= packets + 20)
    assert len(frames) == count


async def test_media_packets_are_not_parsed_as_stun_first(
    link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    await wait_until(lambda: link.inlet.packets >= 10)
    parsed: list[int] = []
    parse = aioice.stun.parse_message

    def counting_parse(data: bytes) -> aioice.stun.Message:
        parsed.append(len(data))
        return parse(data)

    # Observed, not replaced: aioice tries every datagram it hands over as STUN first.
    monkeypatch.setattr(aioice.stun, "parse_message", counting_parse)
    packets = link.inlet.packets
    await wait_until(lambda: link.inlet.packets >= packets + 60)
    # Only STUN (consent checks, a few a minute) and DTLS reach aioice's parser.
    assert len(parsed) < 10


def browser_extensions() -> HeaderExtensionsMap:
    """The header extensions a browser negotiates, and some it may add."""
    uris = [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "urn:ietf:params:rtp-hdrext:toffset",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    ]
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=n, uri=u) for n, u in enumerate(uris, 1)
            ]
        )
    )
    return extensions


def odd_packet(rng: random.Random, extensions: HeaderExtensionsMap) -> bytes:
    """A packet as a browser sends it, with CSRCs, padding, other extensions or damage."""
    packet = RtpPacket(
        payload_type=rng.choice([96, 97, 111]),
        marker=rng.randrange(2),
        sequence_number=rng.randrange(1 << 16),
        timestamp=rng.randrange(1 << 32),
        ssrc=rng.randrange(1 << 32),
        payload=rng.randbytes(rng.randrange(0, 40)),
    )
    packet.csrc = [rng.randrange(1 << 32) for _ in range(rng.choice([0, 0, 0, 2]))]
    packet.padding_size = rng.choice([0, 0, 0, 4])
    values = packet.extensions
    values.mid = rng.choice([None, "0", "1", "screen"])
    values.abs_send_time = rng.choice([None, rng.randrange(1 << 24)])
    values.audio_level = rng.choice([None, (bool(rng.randrange(2)), rng.randrange(128))])
    values.transmission_offset = rng.choice([None, None, rng.randrange(1 << 16)])
    values.transport_sequence_number = rng.choice([None, None, rng.randrange(1 << 16)])
    values.rtp_stream_id = rng.choice([None, None, "h"])
    data = bytearray(packet.serialize(extensions))
    damage = rng.random()
    if damage < 0.1:
        del data[rng.randrange(len(data)) :]
    elif damage < 0.2:
        data[rng.randrange(len(data))] = rng.randrange(256)
    elif damage < 0.25 and data[0] & 0x10:
        data[12 + 4 * len(packet.csrc) : 14 + 4 * len(packet.csrc)] = b"\x10\x00"  # two-byte
    return bytes(data)


def test_packets_parse_as_aiortc_parses_them() -> None:
    rng = random.Random(7)
    extensions = browser_extensions()
    padded = bytearray(RtpPacket(payload=bytes(20)).serialize(extensions))
    padded[0] |= 0x20
    every_padding = [bytes(padded[:-1]) + bytes([size]) for size in range(len(padded) + 2)]
    for data in [*every_padding, *(odd_packet(rng, extensions) for _ in range(20_000))]:
        try:
            expected: RtpPacket | Exception = RtpPacket.parse(data, extensions)
        except (ValueError, struct.error) as exc:
            expected = exc
        try:
            parsed: RtpPacket | Exception = parse_rtp(data, extensions)
        except (ValueError, struct.error) as exc:
            parsed = exc
        if isinstance(expected, Exception):
            # Refused alike (the one that is found first may differ: a bad MID or a truncation).
            assert isinstance(parsed, ValueError) == isinstance(expected, ValueError)
            assert isinstance(parsed, struct.error) == isinstance(expected, struct.error)
        else:
            assert isinstance(parsed, RtpPacket)
            assert vars(parsed) == vars(expected)


def test_remb_goes_out_every_interval_or_at_once_when_the_estimate_falls() -> None:
    throttle = RembThrottle()
    sent = [now for now in range(0, 1000, 10) if throttle.due(1_000_000, now)]
    assert sent == list(range(0, 1000, REMB_INTERVAL_MS))
    assert not throttle.due(990_000, 850)
    assert throttle.due(960_000, 860)
    assert not throttle.due(950_000, 870)


async def test_the_remb_also_speaks_for_the_connection_s_other_videos(link: Link) -> None:
    # aiortc estimates one stream; the browser caps all its video by it: a low layer's
    # rate must be added, or it is taken from the camera.
    await wait_until(lambda: link.feedback.reports >= 1)
    link.remb.others = 5_000_000
    rembs_before = len(link.feedback.rembs)
    await wait_until(lambda: len(link.feedback.rembs) > rembs_before)
    assert min(link.feedback.rembs[rembs_before:]) >= 5_000_000
    link.remb.set_limit(5_100_000)
    rembs_before = len(link.feedback.rembs)
    await wait_until(lambda: len(link.feedback.rembs) > rembs_before)
    assert 5_000_000 <= max(link.feedback.rembs[rembs_before:]) <= 5_100_000
