"""A subscriber's estimate follows its browser's feedback; its layers follow the estimate."""

from __future__ import annotations

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.bandwidth import LinkEstimator, UplinkLoss, worse
from media.down_track import DownTrack
from media.layers import LayerSelector, VideoDemand, allocate
from media.receiver import KeyframeRequester, TrackReceiver
from tests.media.test_track_receiver import PictureLoss, Wire

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)

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


def test_uplink_loss_is_what_the_server_missed_since_the_last_look() -> None:
    uplink = UplinkLoss()
    uplink.update(expected=1000, received=1000)
    assert uplink.quality() == "good"
    uplink.update(expected=1100, received=1070)  # 30 % of the last 100 lost
    assert uplink.quality() == "poor"
    for step in range(2, 8):
        uplink.update(expected=1000 + 100 * step, received=970 + 100 * step)
    assert uplink.quality() == "good"
    uplink.update(expected=50, received=50)  # a new connection counts from zero again
    assert uplink.update(expected=150, received=146) > 0.0


def test_quality_is_the_worse_of_two() -> None:
    assert worse("good", "fair") == "fair"
    assert worse("poor", "good") == "poor"


def test_base_layers_go_by_priority_and_the_screen_share_climbs_first() -> None:
    videos = [
        VideoDemand("camera-a", CAMERA),
        VideoDemand("screen", SCREEN, priority=0),
        VideoDemand("camera-b", CAMERA),
    ]
    # A video whose base layer no longer fits is paused; the first one never is.
    assert allocate(100_000, videos) == {"screen": 0, "camera-a": None, "camera-b": None}
    assert allocate(450_000, videos) == {"screen": 0, "camera-a": 0, "camera-b": None}
    assert allocate(600_000, videos) == {"screen": 0, "camera-a": 0, "camera-b": 0}
    # What is left climbs by priority too; a step that does not fit lets a cheaper one pass.
    assert allocate(700_000, videos) == {"screen": 0, "camera-a": 1, "camera-b": 0}
    assert allocate(850_000, videos) == {"screen": 1, "camera-a": 1, "camera-b": 0}
    assert allocate(2_000_000, videos) == {"screen": 2, "camera-a": 2, "camera-b": 2}


def test_a_falling_then_recovering_remb_lowers_layers_at_once_and_raises_them_slowly() -> None:
    link = LinkEstimator()
    selector = LayerSelector(up_after=4.0)
    camera = [VideoDemand("camera", CAMERA)]
    # (time, REMB): full rate, a fall to 200 kbit/s, to 30 kbit/s for 3 s, then 1 Mbit/s.
    script = [(0, 1_000_000), (1, 1_000_000), (2, 200_000), (3, 200_000)]
    script += [(4, 30_000), (5, 30_000), (6, 30_000)]
    script += [(t, 1_000_000) for t in range(7, 22)]
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
        (4, "0"),  # under 40 kbit/s, but a moment is not enough
        (5, "0"),
        (6, "audio"),  # 2 s under 40 kbit/s: audio only
        (7, "audio"),  # the link is back, but video waits 4 s
        (8, "audio"),
        (9, "audio"),
        (10, "audio"),
        (11, "0"),  # video back at the base layer
        (12, "0"),
        (13, "0"),
        (14, "0"),
        (15, "1"),  # one layer up, then 4 s again for the next
        (16, "1"),
        (17, "1"),
        (18, "1"),
        (19, "1"),
        (20, "2"),
        (21, "2"),
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


async def test_a_voice_flag_in_the_audio_marks_its_sender_as_speaking() -> None:
    receiver = TrackReceiver(OPUS, KeyframeRequester(PictureLoss()))
    track, wire = DownTrack("audio", 48000), Wire()
    track.connect(wire)  # type: ignore[arg-type]
    receiver.add(track)
    packet = RtpPacket(payload_type=111, sequence_number=1, timestamp=0, payload=b"\xf8opus")
    packet.extensions.audio_level = (False, 90)  # background noise
    receiver.on_packet(packet, packet.payload)
    assert receiver.voice_at is None
    packet.extensions.audio_level = (True, 30)
    track.paused = True  # a voice a weak link does not take still counts as speaking
    receiver.on_packet(packet, packet.payload)
    assert receiver.voice_at is not None
    assert len(wire.sent) == 1  # the first packet only


def test_the_active_speaker_s_camera_comes_before_the_others() -> None:
    videos = [VideoDemand("camera-a", CAMERA), VideoDemand("speaker", CAMERA, priority=1)]
    assert allocate(400_000, videos) == {"speaker": 1, "camera-a": 0}


def test_a_low_remb_limits_only_when_it_is_under_what_is_sent_and_the_link_suffers() -> None:
    link = LinkEstimator()
    link.on_remb(60_000)
    link.on_receiver_report(0, 0.01, 0.05)
    assert link.limit(sent=20_000) is None  # it follows a low rate: nothing to learn
    assert link.limit(sent=500_000) is None  # under the rate, but no loss, short RTT: its CPU
    link.on_receiver_report(int(0.05 * 256), 0.01, 0.05)
    assert link.limit(sent=500_000) == 60_000
    link.on_receiver_report(0, 0.01, 0.05)
    link.on_receiver_report(0, 0.01, 0.4)  # no loss now, but a long round trip: a full queue
    assert link.limit(sent=500_000) == 60_000


def test_a_low_estimate_without_heavy_loss_lowers_layers_but_keeps_the_video() -> None:
    selector = LayerSelector()
    camera = [VideoDemand("camera", CAMERA)]
    selection = selector.select(30_000, camera, 0.0, severe=False)
    assert not selection.audio_only and selection.layers == {"camera": 0}
    assert not selector.select(30_000, camera, 1.0, severe=True).audio_only
    assert selector.select(30_000, camera, 3.0, severe=True).audio_only
