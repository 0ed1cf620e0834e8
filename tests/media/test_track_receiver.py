"""One published track feeds many subscribers: keyframes first, continuous numbering."""

from __future__ import annotations

import asyncio
import itertools
import struct

from aiortc import RTCRtpCodecParameters
from aiortc.codecs import depayload
from aiortc.rtp import RtpPacket

from media.codecs import Vp8Descriptor
from media.down_track import DownTrack
from media.receiver import KeyframeRequester, TrackReceiver

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)


class PictureLoss:
    """Counts the PLIs a track receiver sends to its publisher."""

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self) -> bool:
        self.sent += 1
        return True


class Wire:
    """Stands in for a subscriber's negotiated sender: keeps the packets it would send."""

    payload_type = 96
    rtx_payload_type = 98
    ssrc = 1111
    rtx_ssrc = 2222
    mid = "3"
    mid_id = 1
    abs_send_time_id = 2
    audio_level_id = None

    def __init__(self) -> None:
        self.sent: list[RtpPacket] = []
        self.resent: list[RtpPacket] = []

    def send(self, packet: bytes, timestamp: int, ntp_time: int, payload_size: int) -> None:
        self.sent.append(RtpPacket.parse(packet))

    def resend(self, packet: bytes) -> None:
        self.resent.append(RtpPacket.parse(packet))


def make_receiver(interval: float = 0.5) -> tuple[TrackReceiver, PictureLoss]:
    pli = PictureLoss()
    return TrackReceiver(VP8, KeyframeRequester(pli, interval)), pli


def subscriber() -> tuple[DownTrack, Wire]:
    track, wire = DownTrack("video", 90000), Wire()
    track.connect(wire)  # type: ignore[arg-type]
    return track, wire


def send(receiver: TrackReceiver, seq: int, ts: int, picture: int, key: bool) -> None:
    """One single-packet VP8 frame from the publisher."""
    payload = bytes([0x90, 0x80, 0x80 | picture >> 8, picture & 0xFF, 0x10 if key else 0x11])
    packet = RtpPacket(payload_type=97, sequence_number=seq, timestamp=ts, payload=payload)
    packet.marker = 1
    receiver.on_packet(packet, depayload(VP8, payload))


def picture_ids(wire: Wire) -> list[int]:
    return [Vp8Descriptor.parse(p.payload).picture_id for p in wire.sent]  # type: ignore[union-attr]


async def test_new_subscriber_starts_at_a_keyframe_requested_at_once() -> None:
    receiver, pli = make_receiver()
    track, wire = subscriber()
    track.attach(receiver)
    await asyncio.sleep(0)
    assert pli.sent == 1

    send(receiver, 10, 0, 7, key=False)
    send(receiver, 11, 3000, 8, key=True)
    send(receiver, 12, 6000, 9, key=False)

    assert [p.payload[-1] for p in wire.sent] == [0x10, 0x11]
    assert {(p.ssrc, p.payload_type, p.marker) for p in wire.sent} == {(1111, 96, 1)}
    assert wire.sent[0].extensions.mid is None  # header extensions need the peer's map
    assert wire.sent[1].sequence_number - wire.sent[0].sequence_number == 1
    assert wire.sent[1].timestamp - wire.sent[0].timestamp == 3000
    assert picture_ids(wire) == [8, 9]


async def test_keyframe_requests_are_rate_limited_and_shared() -> None:
    receiver, pli = make_receiver(interval=0.2)
    tracks = [subscriber()[0] for _ in range(5)]
    for track in tracks:
        track.attach(receiver)
    await asyncio.sleep(0)
    assert pli.sent == 1

    tracks[0].request_keyframe()  # a subscriber's PLI, too soon after the last request
    tracks[1].request_keyframe()
    await asyncio.sleep(0.1)
    assert pli.sent == 1
    await asyncio.sleep(0.15)
    assert pli.sent == 2


async def test_switching_a_track_to_another_publisher_keeps_its_numbering() -> None:
    first, _ = make_receiver()
    second, _ = make_receiver()
    track, wire = subscriber()
    track.attach(first)
    send(first, 100, 1_000, 5000, key=True)
    send(first, 101, 4_000, 5001, key=False)
    track.attach(second)
    assert first.down_tracks == ()
    send(second, 40_000, 777_000, 12, key=False)
    send(second, 40_001, 780_000, 13, key=True)
    send(second, 40_002, 783_000, 14, key=False)

    seqs = [p.sequence_number for p in wire.sent]
    stamps = [p.timestamp for p in wire.sent]
    assert [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)] == [1, 1, 1]
    assert (stamps[2] - stamps[1]) & 0xFFFFFFFF >= 90000 // 50
    assert stamps[3] - stamps[2] == 3000
    assert picture_ids(wire) == [5000, 5001, 5002, 5003]


async def test_muted_source_forwards_nothing_and_resumes_at_a_keyframe() -> None:
    receiver, pli = make_receiver(interval=0)
    track, wire = subscriber()
    track.attach(receiver)
    send(receiver, 1, 0, 1, key=True)
    receiver.set_muted(True)
    send(receiver, 2, 3000, 2, key=True)
    assert len(wire.sent) == 1

    receiver.set_muted(False)
    await asyncio.sleep(0)
    assert pli.sent == 2
    send(receiver, 3, 6000, 3, key=False)
    send(receiver, 4, 9000, 4, key=True)
    assert [p.payload[-1] for p in wire.sent] == [0x10, 0x10]
    assert wire.sent[1].sequence_number - wire.sent[0].sequence_number == 1


async def test_lost_packet_is_sent_again_as_rtx() -> None:
    receiver, _ = make_receiver()
    track, wire = subscriber()
    track.attach(receiver)
    send(receiver, 50, 0, 1, key=True)
    send(receiver, 51, 3000, 2, key=False)
    lost = wire.sent[1]

    track.retransmit(lost.sequence_number)
    track.retransmit(lost.sequence_number + 7)  # never sent: nothing to repeat

    assert len(wire.resent) == 1
    rtx = wire.resent[0]
    assert (rtx.payload_type, rtx.ssrc, rtx.timestamp) == (98, 2222, lost.timestamp)
    assert struct.unpack("!H", rtx.payload[:2])[0] == lost.sequence_number
    assert rtx.payload[2:] == lost.payload


async def test_ended_publication_releases_its_subscribers() -> None:
    receiver, _ = make_receiver()
    track, _ = subscriber()
    track.attach(receiver)
    receiver.end()
    assert track.receiver is None
    track.stop()
