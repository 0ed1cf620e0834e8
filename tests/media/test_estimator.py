"""The uplink estimator computes what aiortc's does, packet for packet."""

from __future__ import annotations

import random

from aiortc.rate import RateCounter, RemoteBitrateEstimator

from media.estimator import UplinkEstimator, WindowRate


def test_the_window_rate_agrees_with_aiortc_s_rate_counter() -> None:
    counter, window = RateCounter(1000, 8000), WindowRate(1000, 8000)
    rng = random.Random(11)
    now = 0
    for _ in range(20_000):
        now += rng.choice([0, 0, 1, 3, 30, 400, 1500])
        if rng.random() < 0.001:
            counter.reset()
            window.reset()
        assert counter.rate(now) == window.rate(now)
        value = rng.randrange(1, 1500)
        counter.add(value, now)
        window.add(value, now)


Packet = tuple[int, int, int, int]


def publisher_video(seed: int, seconds: int) -> list[Packet]:
    """
    ``(arrival ms, abs-send-time, size, ssrc)`` of a 30 fps publisher whose link is now clear,
    now queueing (delay growing, then draining), with losses, reordering, a pause and an RTX
    SSRC: every branch of the estimator, and the 24-bit abs-send-time wrapping every 64 s.
    """
    rng = random.Random(seed)
    packets: list[Packet] = []
    delay = 20.0
    for frame in range(seconds * 30):
        sent_ms = 1000 + frame * 1000 / 30 + (1500 if frame > seconds * 15 else 0)
        phase = (frame // 90) % 4
        delay = max(5.0, delay + (4.0 if phase == 1 else -3.0 if phase == 2 else 0.0))
        for n in range(rng.choice([1, 3, 4, 4, 5, 12])):
            if rng.random() < 0.02:
                continue  # lost
            send = sent_ms + n * rng.choice([0.0, 0.0, 0.4, 2.0])
            abs_send_time = round(send / 1000 * (1 << 18)) & 0xFFFFFF
            arrival = send + delay + rng.uniform(0, 12)
            ssrc = 2222 if rng.random() < 0.01 else 1111
            packets.append((round(arrival), abs_send_time, rng.randrange(200, 1200), ssrc))
    for i in range(0, len(packets) - 1, 97):
        packets[i], packets[i + 1] = packets[i + 1], packets[i]  # sent in one order, got in another
    # The receiver reads its clock as each packet arrives.
    arrived = 0
    for i, (arrival, abs_send_time, size, ssrc) in enumerate(packets):
        arrived = max(arrived, arrival)
        packets[i] = (arrived, abs_send_time, size, ssrc)
    return packets


def test_the_uplink_estimate_is_aiortc_s_own_on_the_same_packets() -> None:
    for seed in range(3):
        theirs, ours = RemoteBitrateEstimator(), UplinkEstimator()
        estimates = 0
        for arrival, abs_send_time, size, ssrc in publisher_video(seed, 150):
            expected = theirs.add(arrival, abs_send_time, size, ssrc)
            assert ours.add(arrival, abs_send_time, size, ssrc) == expected
            estimates += expected is not None
        assert estimates > 100
        assert theirs.rate_control.current_bitrate == ours.rate_control.current_bitrate
