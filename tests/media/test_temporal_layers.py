"""A subscriber on a weak link gets fewer VP8 temporal layers, and what it gets still decodes."""

from __future__ import annotations

import fractions
import itertools
from collections.abc import Iterator

import av
from aiortc.codecs import depayload
from aiortc.rtp import RtpPacket

from media.codecs import Vp8Descriptor
from media.rewriter import RtpRewriter
from tests.media.test_track_receiver import VP8, Wire, make_receiver, subscriber

WIDTH, HEIGHT = 160, 120
PATTERN = (0, 2, 1, 2)  # L1T3: the temporal layer of each picture in a cycle of four
CHUNK = 300  # payload bytes per packet, so that pictures span several packets


def encode_l1t3(count: int) -> list[bytes]:
    """
    Encode a moving picture with libvpx in three temporal layers, as Chromium's L1T3.

    libvpx's layering mode 3: layer 0 refers to layer 0 only, layer 1 to layer 0, the
    first layer 2 picture of a cycle to layer 0 and the second to layer 1. Error resilience
    keeps a picture's entropy updates from outliving it, so that layers can be dropped.
    """
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.bit_rate = 300_000
    codec.options = {
        "ts-parameters": "ts_layering_mode=3:ts_target_bitrate=150,225,300",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "error-resilient": "default",
    }
    encoded: list[bytes] = []
    for index in range(count):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        luma, *chroma = frame.planes
        bar = (index * 3) % WIDTH
        row = bytes(230 if bar <= x < bar + 20 else (x * 7 + index) % 200 for x in range(WIDTH))
        luma.update(b"".join(row[y % 5 :] + row[: y % 5] for y in range(HEIGHT)))
        for plane in chroma:
            plane.update(bytes([(index * 5) % 256]) * plane.buffer_size)
        frame.pts = index
        encoded += [bytes(packet) for packet in codec.encode(frame)]
    return encoded


def packetize(frames: list[bytes]) -> Iterator[tuple[RtpPacket, int]]:
    """RTP packets as Chromium sends L1T3: PictureID, TL0PICIDX, TID and Y in the descriptor."""
    seq, tl0 = 40_000, 250
    for index, frame in enumerate(frames):
        tid = PATTERN[index % 4]
        if tid == 0:
            tl0 = (tl0 + 1) & 0xFF
        sync = index % 4 in (1, 2)  # these refer to the base layer only
        picture = (0x7FF0 + index) & 0x7FFF
        chunks = [frame[i : i + CHUNK] for i in range(0, len(frame), CHUNK)]
        for n, chunk in enumerate(chunks):
            descriptor = bytes(
                [
                    0x90 if n == 0 else 0x80,
                    0xE0,  # I, L and T: PictureID, TL0PICIDX, TID
                    0x80 | picture >> 8,
                    picture & 0xFF,
                    tl0,
                    tid << 6 | (0x20 if sync else 0),
                ]
            )
            packet = RtpPacket(
                payload_type=97,
                sequence_number=seq & 0xFFFF,
                timestamp=index * 3000,
                payload=descriptor + chunk,
            )
            packet.marker = int(n == len(chunks) - 1)
            seq += 1
            yield packet, index


def frames_of(wire: Wire) -> list[bytes]:
    """Reassemble the pictures a subscriber received (packets in order, marker ends one)."""
    pictures, current = [], b""
    for packet in wire.sent:
        current += depayload(VP8, packet.payload)
        if packet.marker:
            pictures.append(current)
            current = b""
    return pictures


def decode(frames: list[bytes]) -> list[bytes]:
    """Decode with PyAV; each picture's luma plane."""
    decoder = av.CodecContext.create("vp8", "r")
    return [bytes(f.planes[0]) for data in frames for f in decoder.decode(av.Packet(data))]


def check_continuous(wire: Wire) -> None:
    seqs = [p.sequence_number for p in wire.sent]
    assert {(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)} == {1}
    ids = [Vp8Descriptor.parse(p.payload) for p in wire.sent if p.payload[0] & 0x10]
    picture_ids = [d.picture_id for d in ids if d is not None]
    assert {(b - a) & 0x7FFF for a, b in itertools.pairwise(picture_ids)} == {1}


async def test_base_layer_only_is_a_quarter_of_the_pictures_and_decodes_like_the_original() -> None:
    encoded = encode_l1t3(40)
    reference = decode(encoded)
    receiver, _ = make_receiver()
    track, wire = subscriber()
    track.attach(receiver)
    track.temporal_layer = 0
    for packet, _ in packetize(encoded):
        receiver.on_packet(packet, depayload(VP8, packet.payload))

    check_continuous(wire)
    received = decode(frames_of(wire))
    assert len(received) == 10
    assert received == reference[::4]


async def test_two_layers_give_half_the_pictures_and_climb_back_one_at_a_time() -> None:
    encoded = encode_l1t3(40)
    reference = decode(encoded)
    receiver, _ = make_receiver()
    track, wire = subscriber()
    track.attach(receiver)
    track.temporal_layer = 1
    forwarded: list[int] = []
    for packet, index in packetize(encoded):
        if index == 12:
            track.temporal_layer = 0  # down at once
        if index == 20:
            track.temporal_layer = 2  # up: one layer at a time, each at a sync picture
        before = len(wire.sent)
        receiver.on_packet(packet, depayload(VP8, packet.payload))
        if len(wire.sent) > before and (not forwarded or forwarded[-1] != index):
            forwarded.append(index)

    assert forwarded == [
        *range(0, 12, 2),  # layers 0 and 1
        12,
        16,  # base layer only
        20,  # 21 is a sync picture of layer 2, but layer 1 comes first:
        22,  # at picture 22, its sync picture
        *range(24, 40),  # and layer 2 at picture 25
    ]
    check_continuous(wire)
    assert decode(frames_of(wire)) == [reference[i] for i in forwarded]


def test_dropping_keeps_numbers_and_late_packets_get_the_numbers_they_would_have_had() -> None:
    rewriter = RtpRewriter(90000)
    first, _ = rewriter.rewrite(100, 0, 0.0)
    rewriter.drop(101)
    rewriter.drop(102)
    after, _ = rewriter.rewrite(103, 3000, 0.03)
    assert (after - first) & 0xFFFF == 1
    late, _ = rewriter.rewrite(100, 0, 0.05)  # a retransmission of the first packet
    assert late == first
    rewriter.drop(99)  # a late packet of a dropped picture moves nothing
    assert (rewriter.rewrite(104, 3000, 0.06)[0] - after) & 0xFFFF == 1
