"""A subscriber's RTP timeline stays continuous across source switches and wrap-around."""

from __future__ import annotations

import itertools

from media.rewriter import TimestampRewriter

FRAME = 3000  # 30 fps at 90 kHz


def feed(rewriter: TimestampRewriter, first: int, count: int, start: float) -> list[int]:
    return [
        rewriter.rewrite((first + i * FRAME) & 0xFFFFFFFF, start + i / 30) for i in range(count)
    ]


def test_a_source_keeps_its_own_spacing_from_zero() -> None:
    rewriter = TimestampRewriter(90000)
    assert feed(rewriter, 1_000_000, 4, 0.0) == [0, 3000, 6000, 9000]


def test_switching_source_continues_after_the_wall_clock_gap() -> None:
    rewriter = TimestampRewriter(90000)
    before = feed(rewriter, 1_000_000, 10, 0.0)
    rewriter.restart()
    # The new publisher's clock is unrelated; it starts half a second later.
    after = feed(rewriter, 3_900_000_000, 10, 9 / 30 + 0.5)

    assert after[0] - before[-1] == 45000
    assert all(b - a == FRAME for a, b in itertools.pairwise(after))


def test_switch_without_a_pause_still_moves_forward() -> None:
    rewriter = TimestampRewriter(48000)
    rewriter.rewrite(500, 1.0)
    rewriter.restart()
    assert rewriter.rewrite(10, 1.0) == 960  # at least one 20 ms audio frame


def test_32_bit_wrap_around_is_followed() -> None:
    rewriter = TimestampRewriter(90000)
    out = feed(rewriter, (1 << 32) - 2 * FRAME, 5, 0.0)
    assert out == [0, 3000, 6000, 9000, 12000]


def test_unwrapped_input_beyond_32_bits_is_followed() -> None:
    rewriter = TimestampRewriter(90000)
    assert rewriter.rewrite((1 << 32) - 10, 0.0) == 0
    assert rewriter.rewrite((1 << 32) + 2990, 1 / 30) == 3000


def test_a_jump_in_the_source_clock_is_taken_as_a_restart() -> None:
    rewriter = TimestampRewriter(90000)
    rewriter.rewrite(0, 0.0)
    assert rewriter.rewrite(2_000_000_000, 1.0) == 90000


def test_a_late_frame_never_moves_the_timeline_back() -> None:
    rewriter = TimestampRewriter(90000)
    rewriter.rewrite(10_000, 0.0)
    rewriter.rewrite(13_000, 0.03)
    assert rewriter.rewrite(11_000, 0.04) == 3000
    assert rewriter.rewrite(16_000, 0.06) == 6000
