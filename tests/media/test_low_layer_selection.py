"""A camera with a low layer: the selector walks full → low → paused → back, slowly upwards."""

from __future__ import annotations

import itertools

from media.layers import (
    VOICE_MAX_BACKOFF,
    VOICE_REPORTS_SETTLE,
    VOICE_UP_AFTER,
    ActiveSpeaker,
    LayerSelector,
    VideoDemand,
    VoiceLimit,
    ladder,
)

# Cumulative bit/s of an L1T3 camera's full layer up to layers 0, 1 and 2, and of its L1T3 low
# layer's.
FULL = (150_000, 250_000, 400_000)
LOW = (40_000, 55_000, 70_000)


def test_the_low_layer_s_temporal_layers_are_the_steps_below_the_full_one() -> None:
    assert ladder(FULL, LOW) == (40_000, 55_000, 70_000, 150_000, 250_000, 400_000)
    assert ladder(FULL, None) == FULL
    # A full layer measured cheaper than the low one (a still picture) never ranks below it.
    assert ladder((20_000,), LOW) == (40_000, 55_000, 70_000, 70_000)
    # A low layer without temporal layers (a browser that refused L1T3) is one step.
    assert ladder(FULL, (70_000,)) == (70_000, 150_000, 250_000, 400_000)


def test_a_weakening_link_takes_full_then_low_then_pauses_and_climbs_back_slowly() -> None:
    selector = LayerSelector(up_after=2.0, free_up_after=2.0)
    cameras = ladder(FULL, LOW)
    videos = [VideoDemand("speaker", cameras, priority=1), VideoDemand("other", cameras)]
    script = [
        (0, None),  # no limit known: everything at full rate
        (1, 320_000),  # both at the full layer's base (150k + 150k)
        (2, 230_000),  # the speaker keeps the full base layer, the other goes to the low one
        (3, 100_000),  # both on the low layer: the speaker at 15 fps, the other at its base
        (4, 50_000),  # the other paused (40k + 40k does not fit); the first by priority is
        # never paused: audio only is for that
        (5, None),  # the limit is lifted: a step once it held 2 s, each video on its own
        (6, None),
        (7, None),
        (8, None),
        (9, None),
        (10, None),
        (11, None),
        (12, None),
        (13, None),
    ]
    chosen = [
        (now, selector.select(budget, videos, float(now), severe=False).layers)
        for now, budget in script
    ]
    assert chosen == [
        (0, {"speaker": 5, "other": 5}),
        (1, {"speaker": 3, "other": 3}),
        (2, {"speaker": 3, "other": 2}),
        (3, {"speaker": 1, "other": 0}),
        (4, {"speaker": 0, "other": None}),
        (5, {"speaker": 0, "other": None}),
        (6, {"speaker": 0, "other": None}),
        (7, {"speaker": 1, "other": 0}),  # the other is back, at its low layer's base
        (8, {"speaker": 1, "other": 0}),
        (9, {"speaker": 1, "other": 0}),
        (10, {"speaker": 2, "other": 1}),  # one step at a time
        (11, {"speaker": 2, "other": 1}),
        (12, {"speaker": 2, "other": 1}),
        (13, {"speaker": 3, "other": 2}),
    ]


def test_a_paused_video_comes_back_only_once_its_low_layer_fits_for_a_while() -> None:
    selector = LayerSelector(up_after=2.0)
    cameras = ladder(FULL, LOW)
    videos = [VideoDemand("speaker", cameras, priority=1), VideoDemand("other", cameras)]
    selector.select(60_000, videos, 0.0, severe=False)
    layers = [
        selector.select(budget, videos, float(now), severe=False).layers["other"]
        for now, budget in enumerate([60_000, 100_000, 60_000, 100_000, 100_000, 100_000], 1)
    ]
    # 80k of low base layers needs 96k with the headroom; a dip restarts the clock.
    assert layers == [None, None, None, None, None, 0]


def test_without_leave_to_pause_every_video_keeps_its_lowest_layer() -> None:
    # Subscriber.adapt gives that leave only with heavy loss: a low estimate alone may be
    # the receiver's own CPU running late.
    selector = LayerSelector(up_after=2.0)
    cameras = ladder(FULL, LOW)
    videos = [VideoDemand("speaker", cameras, priority=1), VideoDemand("other", cameras)]
    selection = selector.select(50_000, videos, 0.0, severe=False, pause=False)
    assert selection.layers == {"speaker": 0, "other": 0}


def test_the_speaker_keeps_the_priority_for_a_while_when_two_talk_in_turn() -> None:
    speaker = ActiveSpeaker(window=2.0, hold=3.0)
    assert speaker.update({}, 0.0) is None
    assert speaker.update({"doctor": 0.9}, 1.0) == "doctor"
    # The patient answers while the doctor still speaks: the doctor keeps it 3 s.
    assert speaker.update({"doctor": 1.9, "patient": 2.0}, 2.0) == "doctor"
    assert speaker.update({"doctor": 3.0, "patient": 3.9}, 3.9) == "doctor"
    assert speaker.update({"doctor": 3.0, "patient": 4.0}, 4.0) == "patient"
    # Whoever falls silent (2 s without voice) gives the place up at once.
    assert speaker.update({"doctor": 4.5, "patient": 4.0}, 6.0) == "doctor"
    assert speaker.update({"doctor": 4.5, "patient": 4.0}, 7.0) is None


def test_a_layer_keeps_its_place_when_the_low_layer_appears_under_it() -> None:
    selector = LayerSelector(up_after=2.0)
    assert selector.select(None, [VideoDemand("camera", FULL)], 0.0).layers == {"camera": 2}
    # The low layer's three rungs come under the full one's: the camera is still at full T2.
    selector.move("camera", 5)
    layered = [VideoDemand("camera", ladder(FULL, LOW))]
    assert selector.select(None, layered, 1.0).layers == {"camera": 5}
    # Without the move, index 2 would now mean the low layer, three slow climbs below.
    unmoved = LayerSelector(up_after=2.0)
    unmoved.select(None, [VideoDemand("camera", FULL)], 0.0)
    assert unmoved.select(None, layered, 1.0).layers == {"camera": 2}


def test_with_no_limit_known_a_camera_climbs_its_whole_ladder_within_15_s() -> None:
    # Issue 10: a link that recovers gets full rate back within 15 s; under a known limit the
    # same climb waits UP_AFTER (4 s) a step.
    cameras = ladder(FULL, LOW)
    selectors = {None: LayerSelector(), 10_000_000.0: LayerSelector()}
    climbed: dict[float | None, float] = {}
    for budget, selector in selectors.items():
        assert selector.select(30_000, [VideoDemand("camera", cameras)], 0.0).layers == {
            "camera": 0
        }
        for tenth in range(1, 400):
            selection = selector.select(budget, [VideoDemand("camera", cameras)], tenth / 10)
            if selection.layers["camera"] == len(cameras) - 1:
                climbed[budget] = tenth / 10
                break
    assert climbed[None] <= 15.0 < climbed[10_000_000.0]


def test_a_weak_link_losing_its_voices_keeps_those_it_delivers_then_takes_them_back() -> None:
    """Three voices (about 165 kbit/s) on a 60 kbit/s link: two thirds lost."""
    voices = VoiceLimit()
    assert voices.update(3, weak=False, now=0.0) is None
    voices.report(170, now=0.5)  # before the link is known to be weak: still counts
    assert voices.update(3, weak=True, now=1.0) == 1  # int(3 * (1 - 170/256)) = 1
    voices.report(200, now=2.0)  # covers the time before the cut: ignored
    assert voices.update(3, weak=True, now=3.0) == 1
    # The one voice left arrives whole: one more after VOICE_UP_AFTER of clean reports.
    for second in range(5, 30):
        voices.report(0, now=float(second))
        count = voices.update(3, weak=True, now=second + 0.5)
        if count != 1:
            break
    assert count == 2 and second + 0.5 >= 5 + VOICE_UP_AFTER
    # Two voices lose 20 %: back to one (int(2 * 0.8) = 1), never to none.
    voices.report(51, now=second + VOICE_REPORTS_SETTLE + 1)
    assert voices.update(3, weak=True, now=second + VOICE_REPORTS_SETTLE + 1.5) == 1
    cut = second + VOICE_REPORTS_SETTLE + 1.5
    voices.report(255, now=cut + VOICE_REPORTS_SETTLE)
    assert voices.update(3, weak=True, now=cut + VOICE_REPORTS_SETTLE + 0.5) == 1
    # That voice had to go again soon after it came back: the next try waits twice as long.
    start = cut + VOICE_REPORTS_SETTLE + 1
    for at in range(int(start), int(start) + 30):
        voices.report(0, now=float(at))
        if voices.update(3, weak=True, now=at + 0.5) != 1:
            break
    assert at + 0.5 - start >= 2 * VOICE_UP_AFTER
    # Video comes back: every voice at once.
    assert voices.update(3, weak=False, now=100.0) is None


def test_a_little_loss_on_a_weak_link_keeps_every_voice() -> None:
    voices = VoiceLimit()
    for second in range(10):
        voices.report(20, now=float(second))  # 8 %: Opus's in-band FEC covers it
        assert voices.update(3, weak=True, now=second + 0.5) is None


def test_video_stays_away_while_the_link_cannot_carry_every_voice() -> None:
    selector = LayerSelector(up_after=2.0, free_up_after=1.0)
    videos = [VideoDemand("speaker", ladder(FULL, LOW), priority=1)]
    for now in range(4):  # a 60 kbit/s link: the browser's estimate of video is 20 kbit/s
        assert selector.select(20_000, videos, float(now)).audio_only is (now >= 2)
    # On audio only nothing is sent that could be seen to limit: no limit is known.
    for now in range(4, 20):
        assert selector.select(None, videos, float(now), video_back=False).audio_only
    # Every voice is back: video comes back.
    back = [selector.select(None, videos, float(now)).audio_only for now in range(20, 23)]
    assert back == [True, False, False]


def test_a_paused_video_whose_publisher_becomes_the_speaker_comes_back_at_once() -> None:
    selector = LayerSelector(up_after=2.0)
    cameras = ladder(FULL, LOW)
    # A link for one low base layer (40k) only: the speaker's camera has it, the other's not.
    doctor, patient = VideoDemand("doctor", cameras, 1), VideoDemand("patient", cameras, 2)
    assert selector.select(50_000, [doctor, patient], 0.0).layers == {"doctor": 0, "patient": None}
    # The patient speaks now: their camera takes the place, without waiting to climb.
    doctor, patient = VideoDemand("doctor", cameras, 2), VideoDemand("patient", cameras, 1)
    assert selector.select(50_000, [doctor, patient], 1.0).layers == {"doctor": None, "patient": 0}


def test_on_a_link_that_carries_one_voice_the_tries_of_a_second_grow_rarer() -> None:
    voices, count, raised = VoiceLimit(), 1, []
    voices.report(170, now=0.0)
    assert voices.update(3, weak=True, now=0.5) == 1
    for second in range(1, 200):
        # The browser reports on audio every few seconds: two voices lose 45 %, one nothing.
        voices.report(115 if count == 2 else 0, now=float(second))
        now = voices.update(3, weak=True, now=second + 0.5) or 3
        if now > count:
            raised.append(second)
        count = now
    waits = [later - earlier for earlier, later in itertools.pairwise(raised)]
    assert all(b >= a for a, b in itertools.pairwise(waits)), waits  # never more often
    assert waits[-1] >= VOICE_MAX_BACKOFF * VOICE_UP_AFTER
    assert waits[0] <= 2 * (VOICE_UP_AFTER + VOICE_REPORTS_SETTLE) + 3  # the first try: soon
