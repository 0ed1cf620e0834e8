"""One published track feeds many subscribers: keyframes first, slow ones skip ahead."""

from __future__ import annotations

import asyncio
import fractions

import av
from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame

from media.forwarded_track import ForwardedTrack
from media.forwarder import KeyframeRequester, TrackForwarder

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
KEY, DELTA = b"\x10keyframe", b"\x11delta"


class PictureLoss:
    """Counts the PLIs a forwarder sends to its publisher."""

    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self) -> bool:
        self.sent += 1
        return True


def make_forwarder(interval: float = 0.5) -> tuple[TrackForwarder, PictureLoss]:
    pli = PictureLoss()
    return TrackForwarder(VP8, KeyframeRequester(pli, interval)), pli


def send(forwarder: TrackForwarder, data: bytes, timestamp: int) -> None:
    forwarder.on_frame(VP8, JitterFrame(data, timestamp))


async def drain(track: ForwardedTrack) -> list[av.Packet]:
    packets = []
    while track._queue:
        packets.append(await track.recv())
    return packets


async def test_new_subscriber_starts_at_a_keyframe_requested_at_once() -> None:
    forwarder, pli = make_forwarder()
    track = ForwardedTrack("video", 90000)
    track.attach(forwarder)
    await asyncio.sleep(0)
    assert pli.sent == 1

    send(forwarder, DELTA, 0)
    send(forwarder, KEY, 3000)
    send(forwarder, DELTA, 6000)

    packets = await drain(track)
    assert [bytes(p) for p in packets] == [KEY, DELTA]
    assert [p.pts for p in packets] == [0, 3000]
    assert packets[0].time_base == fractions.Fraction(1, 90000)


async def test_keyframe_requests_are_rate_limited_and_shared() -> None:
    forwarder, pli = make_forwarder(interval=0.2)
    tracks = [ForwardedTrack("video", 90000) for _ in range(5)]
    for track in tracks:
        track.attach(forwarder)
    await asyncio.sleep(0)
    assert pli.sent == 1

    tracks[0].request_keyframe()  # a subscriber's PLI, too soon after the last request
    tracks[1].request_keyframe()
    await asyncio.sleep(0.1)
    assert pli.sent == 1
    await asyncio.sleep(0.15)
    assert pli.sent == 2


async def test_slow_subscriber_skips_to_the_next_keyframe() -> None:
    forwarder, pli = make_forwarder(interval=0)
    slow = ForwardedTrack("video", 90000, capacity=3)
    fast = ForwardedTrack("video", 90000, capacity=3)
    slow.attach(forwarder)
    fast.attach(forwarder)
    send(forwarder, KEY, 0)
    await drain(fast)
    for i in (1, 2):
        send(forwarder, DELTA, i * 3000)
        await drain(fast)
    await asyncio.sleep(0)
    requests_before = pli.sent

    send(forwarder, DELTA, 3 * 3000)  # the slow one overflows
    await asyncio.sleep(0)
    assert pli.sent == requests_before + 1
    assert slow.dropped == 3
    send(forwarder, DELTA, 4 * 3000)
    send(forwarder, KEY, 5 * 3000)

    packets = await drain(slow)
    assert [bytes(p) for p in packets] == [KEY]
    assert packets[0].pts == 5 * 3000
    assert len(await drain(fast)) == 3


async def test_switching_a_track_to_another_publisher_keeps_its_timeline() -> None:
    first, _ = make_forwarder()
    second, _ = make_forwarder()
    track = ForwardedTrack("video", 90000)
    track.attach(first)
    send(first, KEY, 1_000)
    send(first, DELTA, 4_000)
    before = [p.pts for p in await drain(track)]
    track.attach(second)
    assert first.tracks == ()
    send(second, DELTA, 777_000)
    send(second, KEY, 780_000)
    send(second, DELTA, 783_000)

    after = [p.pts for p in await drain(track)]
    assert before == [0, 3000]
    assert after[0] >= 3000 + 90000 // 50 and after[1] - after[0] == 3000


async def test_muted_source_forwards_nothing_and_resumes_at_a_keyframe() -> None:
    forwarder, pli = make_forwarder(interval=0)
    track = ForwardedTrack("video", 90000)
    track.attach(forwarder)
    send(forwarder, KEY, 0)
    forwarder.set_muted(True)
    send(forwarder, KEY, 3000)
    assert len(await drain(track)) == 1

    forwarder.set_muted(False)
    await asyncio.sleep(0)
    assert pli.sent == 2
    send(forwarder, DELTA, 6000)
    send(forwarder, KEY, 9000)
    assert [bytes(p) for p in await drain(track)] == [KEY]


async def test_ended_publication_releases_its_subscribers() -> None:
    forwarder, _ = make_forwarder()
    track = ForwardedTrack("video", 90000)
    track.attach(forwarder)
    forwarder.end()
    assert track.source is None
    track.stop()
