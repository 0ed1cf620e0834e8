"""A down track's RTP stream stays continuous across upstream switches and wrap-around."""

from __future__ import annotations

import itertools

from media.codecs import Vp8Descriptor
from media.rewriter import RtpRewriter

FRAME = 3000  # 30 fps at 90 kHz


def feed(
    rewriter: RtpRewriter, first_seq: int, first_ts: int, count: int, start: float
) -> list[tuple[int, int]]:
    """One packet per frame from a source: its numbers as the subscriber sees them."""
    return [
        rewriter.rewrite(
            (first_seq + i) & 0xFFFF, (first_ts + i * FRAME) & 0xFFFFFFFF, start + i / 30
        )
        for i in range(count)
    ]


def steps(out: list[tuple[int, int]]) -> tuple[set[int], set[int]]:
    seq = {(b[0] - a[0]) & 0xFFFF for a, b in itertools.pairwise(out)}
    ts = {(b[1] - a[1]) & 0xFFFFFFFF for a, b in itertools.pairwise(out)}
    return seq, ts


def test_a_source_keeps_its_own_spacing_from_a_random_start_in_the_lower_half() -> None:
    rewriter = RtpRewriter(90000)
    out = feed(rewriter, 60_000, 1_000_000, 5, 0.0)
    assert out[0][0] < 0x8000
    assert steps(out) == ({1}, {FRAME})


def test_switching_source_continues_numbers_after_the_wall_clock_gap() -> None:
    rewriter = RtpRewriter(90000)
    before = feed(rewriter, 100, 1_000_000, 10, 0.0)
    rewriter.restart()
    # The new publisher's numbering is unrelated; it starts half a second later.
    after = feed(rewriter, 50_000, 3_900_000_000, 10, 9 / 30 + 0.5)

    assert (after[0][0] - before[-1][0]) & 0xFFFF == 1
    assert (after[0][1] - before[-1][1]) & 0xFFFFFFFF == 45000
    assert steps(after) == ({1}, {FRAME})


def test_switch_without_a_pause_still_moves_time_forward() -> None:
    rewriter = RtpRewriter(48000)
    _, first = rewriter.rewrite(7, 500, 1.0)
    rewriter.restart()
    _, second = rewriter.rewrite(9000, 10, 1.0)
    assert (second - first) & 0xFFFFFFFF == 960  # at least one 20 ms audio frame


def test_16_and_32_bit_wrap_around_in_the_source_is_followed() -> None:
    rewriter = RtpRewriter(90000)
    out = feed(rewriter, 0xFFFE, (1 << 32) - 2 * FRAME, 5, 0.0)
    assert steps(out) == ({1}, {FRAME})


def test_output_wraps_around_like_any_rtp_stream() -> None:
    rewriter = RtpRewriter(90000)
    seq0, ts0 = rewriter.rewrite(10, 0, 0.0)
    # Bring the output just below both wrap points, then switch source there.
    near_seq, near_ts = (0xFFFE - seq0) & 0xFFFF, (0xFFFFFFFF - FRAME - ts0) & 0xFFFFFFFF
    rewriter.rewrite(10 + near_seq // 2, near_ts // 2, 0.5)  # streams move in small steps
    assert rewriter.rewrite(10 + near_seq, near_ts, 1.0) == (0xFFFE, 0xFFFFFFFF - FRAME)
    rewriter.restart()
    out = feed(rewriter, 4000, 123, 4, 1.0)
    assert [seq for seq, _ in out] == [0xFFFF, 0, 1, 2]
    assert out[1][1] < FRAME * 2 and steps(out) == ({1}, {FRAME})


def test_loss_and_reordering_pass_through_so_the_subscriber_can_ask_again() -> None:
    rewriter = RtpRewriter(90000)
    first, _ = rewriter.rewrite(1000, 0, 0.0)
    late, _ = rewriter.rewrite(1003, FRAME, 0.03)
    early, _ = rewriter.rewrite(1001, 0, 0.04)
    assert (late - first) & 0xFFFF == 3
    assert (early - first) & 0xFFFF == 1
    rewriter.restart()
    # The next segment continues after the newest number, not after the late packet.
    nxt, _ = rewriter.rewrite(7, 6000, 0.1)
    assert (nxt - late) & 0xFFFF == 1


def vp8_payload(picture_id: int, long_id: bool = True, tl0: int | None = None) -> bytes:
    ext = 0x80 | (0x40 if tl0 is not None else 0)
    if long_id:
        pid = bytes([0x80 | picture_id >> 8, picture_id & 0xFF])
    else:
        pid = bytes([picture_id & 0x7F])
    return bytes([0x90, ext]) + pid + (bytes([tl0]) if tl0 is not None else b"") + b"\x10data"


def test_vp8_picture_ids_continue_across_a_source_switch_and_wrap() -> None:
    rewriter = RtpRewriter(90000)
    sent = []
    for i, picture in enumerate((0x7FFE, 0x7FFF, 0, 1)):
        descriptor = Vp8Descriptor.parse(vp8_payload(picture))
        assert descriptor is not None
        rewriter.rewrite(100 + i, i * FRAME, i / 30, descriptor)
        sent.append(descriptor.rewrite(vp8_payload(picture), rewriter.picture_offset, 0))
    rewriter.restart()
    for i, picture in enumerate((5000, 5001)):
        payload = vp8_payload(picture, tl0=200 + i)
        descriptor = Vp8Descriptor.parse(payload)
        assert descriptor is not None
        rewriter.rewrite(9000 + i, 777 + i * FRAME, 1 + i / 30, descriptor)
        sent.append(descriptor.rewrite(payload, rewriter.picture_offset, rewriter.tl0_offset))

    pictures = [Vp8Descriptor.parse(p).picture_id for p in sent]  # type: ignore[union-attr]
    assert pictures == [0x7FFE, 0x7FFF, 0, 1, 2, 3]
    assert all(p.endswith(b"\x10data") for p in sent)


def test_short_vp8_picture_ids_keep_their_width() -> None:
    payload = vp8_payload(120, long_id=False)
    descriptor = Vp8Descriptor.parse(payload)
    assert descriptor is not None and not descriptor.long_picture_id
    moved = descriptor.rewrite(payload, 10, 0)
    assert len(moved) == len(payload)
    assert Vp8Descriptor.parse(moved).picture_id == (120 + 10) & 0x7F  # type: ignore[union-attr]


def test_vp8_payload_without_picture_id_is_left_alone() -> None:
    assert Vp8Descriptor.parse(b"\x10\x9d\x01\x2a") is None
