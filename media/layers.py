"""Which layers of which videos a subscriber gets: the temporal layer filter and the selector."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from .bandwidth import LOSS_HIGH, LOSS_LOW
from .codecs import PictureNumbers

MAX_TEMPORAL_LAYER = 2
"""The highest temporal layer id forwarded (L1T3 has layers 0, 1 and 2)."""

AUDIO_ONLY_BELOW = 40_000
"""Below this estimate (bit/s) a subscriber gets audio only. A browser's REMB covers the streams
that carry abs-send-time, the videos, so this is what the link carries beside the voices: with
them, a link of about 100 kbit/s in a visit. A camera's low layer's base takes 15-30 kbit/s."""

AUDIO_ONLY_AFTER = 2.0
"""Seconds a link must stay that weak before its video is taken away (a burst is not enough)."""

PAUSE_BELOW = 300_000
"""A video may be paused only when its subscriber's own estimate (REMB) is under this (bit/s):
a receiver starved of CPU reports loss and a lowered REMB too, but rarely that low."""

VIDEO_BACK_ABOVE = 150_000
"""A subscriber on audio only gets video back once its estimate stays above this (bit/s)."""

UP_AFTER = 4.0
"""Seconds a better choice must stay possible before the selector climbs one step."""

FREE_UP_AFTER = 1.0
"""The same while no limit is known (the link carries what it is sent): a camera climbs its
ladder's six steps, from its low layer's base to its full rate, in about 6 s."""

BACKOFF_WINDOW = 10.0
"""A step down within this many seconds of a step up makes the next climb wait longer."""

MAX_BACKOFF_STEPS = 2
"""Climbs wait at most ``2 ** MAX_BACKOFF_STEPS`` times the usual time."""

UP_HEADROOM = 1.2
"""A layer is climbed to only when the budget exceeds its bitrate by this factor."""

SPEAKER_WINDOW = 2.0
"""Seconds after their last voice packet a participant still counts as speaking."""


SPEAKER_HOLD = 3.0
"""Seconds the active speaker keeps the priority before another who spoke may take it: two
people talking in turn do not swap the layers of their videos at every sentence."""


class TemporalLayerFilter:
    """
    Decides, picture by picture, whether a down track forwards a VP8 picture of some layer.

    The decision is taken on a picture's first packet and holds for the rest of it, so a
    picture is forwarded whole or not at all. Going down takes effect at the next picture;
    going up waits for a keyframe, or climbs one layer at a picture of that layer with the
    Y (layer sync) bit, the first that depends on base-layer pictures only. The base layer is
    never dropped: pausing a video is the down track's business.
    """

    def __init__(self) -> None:
        self.target = MAX_TEMPORAL_LAYER
        self.current = MAX_TEMPORAL_LAYER
        self._picture: int | None = None
        self._keep = True

    @property
    def climbing(self) -> bool:
        """True while a higher target waits for a switch point."""
        return self.target > self.current

    def accept(self, pictures: PictureNumbers, keyframe: bool) -> bool:
        """
        Tell whether to forward a packet.

        :param pictures: The packet's picture numbers.
        :param keyframe: Whether a decoder can start at this packet.
        """
        tid = pictures.temporal_id
        if tid is None:
            return True
        picture_id = pictures.picture_id
        if picture_id != self._picture:
            self._picture = picture_id
            if keyframe or self.target < self.current:
                self.current = self.target
            elif tid == self.current + 1 <= self.target and pictures.layer_sync:
                self.current = tid
            self._keep = tid <= self.current
        return self._keep


class ActiveSpeaker:
    """
    Who has the active speaker's priority: whoever spoke last, within `window` seconds, but
    the one chosen keeps it for `hold` seconds while still speaking.

    :param window: Seconds after their last voice packet a participant still counts.
    :param hold: Seconds a chosen speaker keeps the place while still speaking.
    """

    def __init__(self, window: float = SPEAKER_WINDOW, hold: float = SPEAKER_HOLD) -> None:
        self._window = window
        self._hold = hold
        self._speaker: str | None = None
        self._since = 0.0

    def update(self, voices: Mapping[str, float], now: float) -> str | None:
        """
        Choose again; the active speaker, if anyone speaks.

        :param voices: When each participant's audio last carried the voice flag.
        :param now: The time in seconds (monotonic).
        """
        speaking = {who: at for who, at in voices.items() if at > now - self._window}
        held = self._speaker
        if held in speaking and now - self._since < self._hold:
            return held
        latest = max(speaking, key=speaking.__getitem__, default=None)
        if latest != held:
            self._speaker, self._since = latest, now
        return latest


VOICE_REPORTS_SETTLE = 3.0
"""Seconds after a change in the voices forwarded before receiver reports count again: a report
covers the time since the previous one (a browser reports on audio every few seconds)."""

VOICE_UP_AFTER = 5.0
"""Seconds of clean reports (under 2 % loss) before one more voice is forwarded again; twice
that after a voice brought back had to go again within :data:`BACKOFF_WINDOW`, and so on."""

VOICE_MAX_BACKOFF = 8
"""A voice is tried again at least every ``8 * VOICE_UP_AFTER`` seconds (40 s): each try costs
the voices already heard a few seconds of loss on a link that still cannot carry it."""


class VoiceLimit:
    """
    How many voices a subscriber gets while its link is too weak for any video.

    Three voices take about 165 kbit/s with their packets' headers (Opus at 32 kbit/s in
    50 packets a second): a link of 60 kbit/s loses two thirds of each, and every voice
    breaks up. The receiver reports on the voices forwarded say how much is lost; when it is
    over 10 %, only as many voices as the link delivered go on (the most recent speakers,
    the subscriber's choice), at least one. After :data:`VOICE_UP_AFTER` seconds of clean
    reports one more comes back, until all do; video comes back only after that. A browser
    reports on audio every 5 s or so, so a voice brought back onto a link that cannot carry
    it costs the others a few seconds of loss: each one that has to go again soon makes the
    next try wait twice as long, up to :data:`VOICE_MAX_BACKOFF` times.
    Jitsi's last-N applied to audio, and only on links that need it.
    """

    def __init__(self) -> None:
        self.count: int | None = None
        """Voices forwarded at most; None for every voice."""
        self._changed_at = float("-inf")
        self._raised_at: float | None = None
        self._backoff = 1
        self._worst: float | None = None
        self._clean_since: float | None = None

    def report(self, fraction_lost: int, now: float) -> None:
        """
        Take a receiver report block about a voice being forwarded.

        :param fraction_lost: Packets lost since the previous report, in 1/256.
        :param now: The time in seconds (monotonic).
        """
        if now - self._changed_at >= VOICE_REPORTS_SETTLE:
            self._worst = max(self._worst or 0.0, fraction_lost / 256)

    def update(self, voices: int, weak: bool, now: float) -> int | None:
        """
        Decide again; the voices to forward at most, None for all.

        :param voices: Voices the subscriber receives.
        :param weak: Whether it gets audio only for its link.
        :param now: The time in seconds (monotonic).
        """
        worst, self._worst = self._worst, None
        if not weak:
            self.count, self._clean_since, self._raised_at, self._backoff = None, None, None, 1
            return None
        count = voices if self.count is None else self.count
        if worst is not None and worst > LOSS_HIGH:
            fit = max(1, int(count * (1 - worst)))
            self._clean_since = None
            if fit < count:
                raised, self._raised_at = self._raised_at, None
                quick = raised is not None and now - raised < BACKOFF_WINDOW
                self._backoff = min(2 * self._backoff, VOICE_MAX_BACKOFF) if quick else 1
                self._set(fit, voices, now)
        elif worst is not None and worst < LOSS_LOW:
            self._clean_since = now if self._clean_since is None else self._clean_since
        elif worst is not None:
            self._clean_since = None
        if (
            self.count is not None
            and self._clean_since is not None
            and now - self._clean_since >= VOICE_UP_AFTER * self._backoff
        ):
            self._set(self.count + 1, voices, now)
            self._clean_since, self._raised_at = now, now
        return self.count

    def _set(self, count: int, voices: int, now: float) -> None:
        self.count = None if count >= voices else count
        self._changed_at = now


class LayerRates:
    """
    The bit rate of each temporal layer of one video, from a down track's byte counters.

    :param smoothing: Weight of the previous figure in each new one.
    """

    def __init__(self, smoothing: float = 0.5) -> None:
        self._smoothing = smoothing
        self._counted: list[int] | None = None
        self._rates = [0.0] * 4

    @property
    def measured(self) -> bool:
        """True once a rate is known: the counters were taken twice."""
        return self._counted is not None and any(self._rates)

    def update(self, counted: Sequence[int], elapsed: float) -> tuple[float, ...]:
        """
        Take the counters again; the cumulative bit/s up to each layer seen, lowest first.

        :param counted: Payload bytes counted so far per temporal layer.
        :param elapsed: Seconds since the previous update.
        """
        if self._counted is not None and elapsed > 0:
            for layer, (now, before) in enumerate(zip(counted, self._counted, strict=True)):
                rate = (now - before) * 8 / elapsed
                old = self._rates[layer]
                self._rates[layer] = (
                    rate if not old else old * self._smoothing + rate * (1 - self._smoothing)
                )
        self._counted = list(counted)
        top = max((layer for layer, rate in enumerate(self._rates) if rate > 0), default=0)
        return tuple(accumulate(self._rates[: top + 1]))


def ladder(full: tuple[float, ...], low: tuple[float, ...] | None) -> tuple[float, ...]:
    """
    The layers one camera can be forwarded at, as bit/s: each temporal layer of its low
    spatial layer, if the publisher sends one, then each temporal layer of the full one.

    :param full: The full layer's cumulative bit/s per temporal layer (:class:`LayerRates`).
    :param low: The low layer's, if the publisher sends one; its entries are the ladder's
        first rungs (a link that cannot take the whole low layer takes its base layer).
    """
    if low is None:
        return full
    floor = low[-1]
    return (*low, *(max(rate, floor) for rate in full))


@dataclass(frozen=True)
class VideoDemand:
    """
    One video a subscriber receives, as the selector sees it.

    :param key: What names the video (its down track).
    :param layer_bitrates: Bit/s the video takes at each layer it can be forwarded at, lowest
        first: its low spatial layer if it has one, then each temporal layer of the full one,
        cumulative; one entry for a video without layers.
    :param priority: 0 for a screen share, 1 for the active speaker, 2 for the others.
    """

    key: Hashable
    layer_bitrates: tuple[float, ...]
    priority: int = 2


@dataclass
class Selection:
    """
    What a subscriber gets: audio only, or a layer (None: paused) per video.

    :param audio_only: True when its link is too weak for any video.
    :param layers: The chosen layer of each video, by key, an index into its
        :attr:`VideoDemand.layer_bitrates`; None when it is paused.
    """

    audio_only: bool = False
    layers: dict[Hashable, int | None] = field(default_factory=dict)


def allocate(
    budget: float, videos: Sequence[VideoDemand], pause: bool = True
) -> dict[Hashable, int | None]:
    """
    Spread `budget` over `videos`: lowest layers by priority, then one layer up at a time.

    The first video by priority always keeps its lowest layer (a link too weak even for that
    gets audio only, :class:`LayerSelector`); each other one gets its lowest layer if it fits
    in what is left, else it is paused (None), when `pause` allows. What remains climbs one
    layer at a time, in priority order, a step that does not fit letting a cheaper one pass.

    :param budget: Bit/s available for video.
    :param videos: The videos, in any order.
    :param pause: False to keep every video at its lowest layer at least.
    :return: The highest affordable layer of each video; None for a paused one.
    """
    ordered = sorted(videos, key=lambda v: v.priority)
    chosen: dict[Hashable, int | None] = {}
    spent = 0.0
    for index, video in enumerate(ordered):
        lowest = video.layer_bitrates[0]
        if index == 0 or not pause or spent + lowest <= budget:
            chosen[video.key] = 0
            spent += lowest
        else:
            chosen[video.key] = None
    climbed = True
    while climbed:
        climbed = False
        for video in ordered:
            layer = chosen[video.key]
            if layer is None or layer + 1 >= len(video.layer_bitrates):
                continue
            step = video.layer_bitrates[layer + 1] - video.layer_bitrates[layer]
            if spent + step <= budget:
                chosen[video.key] = layer + 1
                spent += step
                climbed = True
    return chosen


class LayerSelector:
    """
    Chooses, for one subscriber, whether it gets video and which layer of each video.

    Down fast: a choice that no longer fits the estimate is lowered at once. Up slowly: a
    video climbs one step only after the budget has carried that step, with headroom, for
    `up_after` seconds; video comes back after audio only the same way. A step that had to
    be taken back soon after it was taken (the link could not carry it after all) waits
    twice as long the next time, up to ``2 ** MAX_BACKOFF_STEPS`` times `up_after`. An estimate
    of None means no limit is known (the link carries what is sent): everything climbs, a step
    every `free_up_after` seconds.

    :param audio_only_below: Estimate (bit/s) under which the subscriber gets audio only.
    :param video_back_above: Estimate (bit/s) above which video comes back.
    :param up_after: Seconds a step up must stay affordable before it is taken.
    :param free_up_after: The same while no limit is known.
    """

    def __init__(
        self,
        audio_only_below: float = AUDIO_ONLY_BELOW,
        video_back_above: float = VIDEO_BACK_ABOVE,
        up_after: float = UP_AFTER,
        free_up_after: float = FREE_UP_AFTER,
    ) -> None:
        self._audio_only_below = audio_only_below
        self._video_back_above = video_back_above
        self._up_after = up_after
        self._free_up_after = free_up_after
        self._current = Selection()
        self._up_since: dict[Hashable, float] = {}
        self._climbed_at: dict[Hashable, float] = {}
        self._backoff: dict[Hashable, int] = {}
        self._weak_since: float | None = None

    @property
    def current(self) -> Selection:
        """The latest selection."""
        return self._current

    def select(
        self,
        estimate: float | None,
        videos: Sequence[VideoDemand],
        now: float,
        severe: bool = True,
        pause: bool = True,
        video_back: bool = True,
    ) -> Selection:
        """
        Choose again from a new estimate.

        :param estimate: What the subscriber's link carries (bit/s); None when no limit
            is known.
        :param videos: The videos it receives.
        :param now: The time in seconds (monotonic).
        :param severe: Whether the link loses heavily: only then does a low estimate take
            the video away (a low estimate alone lowers layers).
        :param pause: Whether a video that does not fit at its lowest layer may be paused
            (:func:`allocate`).
        :param video_back: Whether video may come back after audio only at all: not while
            the link cannot carry every voice (:class:`VoiceLimit`).
        """
        budget = float("inf") if estimate is None else estimate
        wait = self._up_after if estimate is not None else self._free_up_after
        before = self._current
        audio_only = before.audio_only
        if severe and budget < self._audio_only_below:
            self._weak_since = now if self._weak_since is None else self._weak_since
            weak_for = now - self._weak_since
        else:
            self._weak_since, weak_for = None, -1.0
        if not audio_only and weak_for >= AUDIO_ONLY_AFTER:
            audio_only = True
            self._fell("audio", now)
        elif audio_only and self._held(
            "audio", video_back and budget >= self._video_back_above, now, wait
        ):
            audio_only = False
        if audio_only:
            self._current = Selection(True, {v.key: None for v in videos})
            return self._current
        hold = allocate(budget, videos, pause)
        climb = allocate(budget / UP_HEADROOM, videos, pause)
        layers: dict[Hashable, int | None] = {}
        first = min(videos, key=lambda v: v.priority).key if videos else None
        for video in videos:
            fits = _level(hold[video.key])
            can_climb = _level(climb[video.key])
            if before.audio_only:
                now_at = 0  # video comes back at its base layer
            elif video.key in before.layers:
                now_at = _level(before.layers[video.key])
            else:
                now_at = fits  # a video new to this subscriber starts at what fits
            if now_at < 0 and video.key == first:
                now_at = 0  # the first by priority always has its lowest layer: back at once
            if fits < now_at:
                chosen = fits
                self._fell(video.key, now)
            elif self._held(video.key, can_climb > now_at, now, wait):
                chosen = now_at + 1
            else:
                chosen = now_at
            layers[video.key] = None if chosen < 0 else chosen
        self._current = Selection(False, layers)
        return self._current

    def move(self, key: Hashable, layer: int) -> None:
        """
        A video's ladder changed shape (its low layer came or went): the layer it is at
        now has the index `layer` in the new one.

        :param key: The video.
        :param layer: Its current layer's index in the new ladder.
        """
        if self._current.layers.get(key) is not None:
            self._current.layers[key] = layer

    def _held(self, key: Hashable, condition: bool, now: float, wait: float) -> bool:
        """True once `condition` has held `wait` seconds (more after quick falls) to climb."""
        if not condition:
            self._up_since.pop(key, None)
            return False
        since = self._up_since.setdefault(key, now)
        if now - since < wait * 2 ** self._backoff.get(key, 0):
            return False
        self._up_since.pop(key, None)
        self._climbed_at[key] = now
        return True

    def _fell(self, key: Hashable, now: float) -> None:
        """A step down: one taken back soon after it was climbed doubles the next wait."""
        self._up_since.pop(key, None)
        climbed = self._climbed_at.pop(key, None)
        if climbed is None:
            return
        if now - climbed < BACKOFF_WINDOW:
            self._backoff[key] = min(self._backoff.get(key, 0) + 1, MAX_BACKOFF_STEPS)
        else:
            self._backoff[key] = 0


def _level(layer: int | None) -> int:
    """A layer as a number, -1 for paused, so that choices compare."""
    return -1 if layer is None else layer
