"""A subscriber's estimate follows its browser's feedback; its layers follow the estimate."""

from __future__ import annotations

from media.bandwidth import LinkEstimator, worse
from media.layers import LayerSelector, VideoDemand, allocate

# Cumulative bit/s of an L1T3 camera up to layers 0, 1 and 2, and of a screen share.
CAMERA = (150_000, 250_000, 400_000)
SCREEN = (300_000, 450_000, 600_000)


def test_remb_is_followed_down_at_once_and_loss_cuts_below_it() -> None:
    link = LinkEstimator()
    assert link.estimate is None
    link.on_remb(2_000_000)
    link.on_remb(300_000)
    assert link.estimate == 300_000

    link.on_receiver_report(fraction_lost=int(0.3 * 256), jitter_seconds=0.01, rtt=0.08)
    cut = link.estimate
    assert cut is not None and 250_000 < cut < 260_000  # cut by half the loss (29.7 %)
    assert link.quality() == "poor"

    for _ in range(30):  # clean reports: back to the REMB, no further
        link.on_receiver_report(fraction_lost=0, jitter_seconds=0.01, rtt=0.08)
    assert link.estimate == 300_000
    assert link.quality() == "good"
    assert link.quality(wanted=400_000) == "fair"
    assert link.quality(wanted=800_000) == "poor"


def test_quality_is_the_worse_of_two() -> None:
    assert worse("good", "fair") == "fair"
    assert worse("poor", "good") == "poor"


def test_budget_goes_to_the_screen_share_before_the_cameras() -> None:
    videos = [
        VideoDemand("camera-a", CAMERA),
        VideoDemand("screen", SCREEN, priority=0),
        VideoDemand("camera-b", CAMERA),
    ]
    assert allocate(450_000, videos) == {"screen": 0, "camera-a": 0, "camera-b": None}
    # What is left climbs by priority too; a step that does not fit lets a cheaper one pass.
    assert allocate(700_000, videos) == {"screen": 0, "camera-a": 1, "camera-b": 0}
    assert allocate(850_000, videos) == {"screen": 1, "camera-a": 1, "camera-b": 0}
    assert allocate(2_000_000, videos) == {"screen": 2, "camera-a": 2, "camera-b": 2}


def test_a_falling_then_recovering_remb_lowers_layers_at_once_and_raises_them_slowly() -> None:
    link = LinkEstimator()
    selector = LayerSelector(up_after=4.0)
    camera = [VideoDemand("camera", CAMERA)]
    # (time, REMB): full rate, a fall to 200 kbit/s, to 60 kbit/s, then back to 1 Mbit/s.
    script = [(0, 1_000_000), (1, 1_000_000), (2, 200_000), (3, 200_000), (4, 60_000)]
    script += [(t, 1_000_000) for t in range(5, 20)]
    chosen: list[tuple[int, str]] = []
    for now, remb in script:
        link.on_remb(remb)
        selection = selector.select(link.estimate, camera, float(now))
        chosen.append((now, "audio" if selection.audio_only else str(selection.layers["camera"])))

    assert chosen == [
        (0, "2"),
        (1, "2"),
        (2, "0"),  # down at once, two layers at a time
        (3, "0"),
        (4, "audio"),  # under 100 kbit/s: audio only
        (5, "audio"),  # the link is back, but video waits 4 s
        (6, "audio"),
        (7, "audio"),
        (8, "audio"),
        (9, "0"),  # video back at the base layer
        (10, "0"),
        (11, "0"),
        (12, "0"),
        (13, "1"),  # one layer up, then 4 s again for the next
        (14, "1"),
        (15, "1"),
        (16, "1"),
        (17, "1"),
        (18, "2"),
        (19, "2"),
    ]


def test_a_loss_burst_takes_a_layer_away_until_the_link_is_clean_again() -> None:
    link = LinkEstimator()
    selector = LayerSelector(up_after=2.0)
    camera = [VideoDemand("camera", CAMERA)]
    link.on_remb(600_000)
    layers = []
    for now in range(12):
        loss = 0.4 if 3 <= now < 5 else 0.0
        link.on_receiver_report(int(loss * 256), 0.01, 0.05)
        layers.append(selector.select(link.estimate, camera, float(now)).layers["camera"])
    # Two 40 % loss reports cut 600k to 480k (layer 2 still fits) and to 385k (layer 1);
    # clean reports grow it by 8 % each: at 485k (t=7) layer 2 fits with its 20 % headroom,
    # and 2 s later it is taken.
    assert layers == [2, 2, 2, 2, 1, 1, 1, 1, 1, 2, 2, 2]


def test_a_flapping_estimate_does_not_flap_the_layers() -> None:
    selector = LayerSelector(up_after=3.0)
    camera = [VideoDemand("camera", CAMERA)]
    layers = [
        selector.select(estimate, camera, step * 0.5).layers["camera"]
        for step, estimate in enumerate([1_000_000, 200_000] * 8)
    ]
    assert layers[0] == 2 and set(layers[1:]) == {0}
