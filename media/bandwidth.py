"""What one subscriber's link carries, estimated from the RTCP feedback its browser sends."""

from __future__ import annotations

from typing import Literal

Quality = Literal["good", "fair", "poor"]
"""A participant's connection quality as its tile shows it."""

LOSS_HIGH = 0.10
"""Above this fraction of packets lost the estimate is cut (as in Google congestion control)."""

LOSS_LOW = 0.02
"""Below this fraction of packets lost the estimate may grow again."""

GROWTH = 1.08
"""Factor a loss-based estimate grows by per clean receiver report, at most up to the REMB."""

LOSS_SMOOTHING = 0.5
"""Weight of the previous loss figure in the smoothed loss."""

LIMITING = 0.9
"""An estimate under this fraction of the bit rate sent means the link cannot carry it."""

RTT_FAIR = 0.25
"""Round-trip time (s) from which a link is no better than fair."""

RTT_POOR = 0.5
"""Round-trip time (s) from which a link is poor."""


class LinkEstimator:
    """
    An estimate of the bit rate one subscriber's link carries, and how well it does.

    The browser's REMB (receiver estimated maximum bitrate, sent because the server
    negotiates ``goog-remb`` and abs-send-time) is the ceiling, followed at once when it
    falls; receiver reports add loss and round-trip time: a loss over 10 % cuts the
    estimate by half the loss, as Google congestion control's loss-based controller does,
    and a report under 2 % lets it grow back towards the REMB. Inputs are plain
    numbers, so scripted feedback drives it in tests.
    """

    def __init__(self) -> None:
        self._remb: float | None = None
        self._loss_based: float | None = None
        self.loss = 0.0
        self.rtt: float | None = None
        self.jitter = 0.0

    @property
    def estimate(self) -> float | None:
        """What the link carries (bit/s); None before any REMB."""
        if self._remb is None:
            return None
        if self._loss_based is None:
            return self._remb
        return min(self._remb, self._loss_based)

    def limit(self, sent: float) -> float | None:
        """
        The estimate if it limits what is sent, else None: the link carries what it gets.

        A receiver's REMB follows the rate it receives (a browser's stays within about 1.5
        times it), so a low REMB under a low rate says nothing about the link; only an
        estimate under the rate sent, or heavy loss, does.

        :param sent: Bit/s sent to the subscriber lately.
        """
        estimate = self.estimate
        if estimate is None or (estimate >= sent * LIMITING and self.loss <= LOSS_HIGH):
            return None
        return estimate

    def on_remb(self, bitrate: float) -> None:
        """
        Take a REMB.

        :param bitrate: The browser's estimate (bit/s) for the streams it names.
        """
        self._remb = bitrate
        if self._loss_based is not None:
            self._loss_based = min(self._loss_based, bitrate)

    def on_receiver_report(
        self, fraction_lost: int, jitter_seconds: float, rtt: float | None
    ) -> None:
        """
        Take a receiver report block about one of the streams sent to this subscriber.

        :param fraction_lost: Packets lost since the previous report, in 1/256.
        :param jitter_seconds: The interarrival jitter, in seconds.
        :param rtt: The round-trip time it gives, in seconds, if known.
        """
        loss = fraction_lost / 256
        self.loss = LOSS_SMOOTHING * self.loss + (1 - LOSS_SMOOTHING) * loss
        self.jitter = jitter_seconds
        if rtt is not None:
            self.rtt = rtt
        base = self._loss_based if self._loss_based is not None else self._remb
        if base is None:
            return
        if loss > LOSS_HIGH:
            self._loss_based = base * (1 - 0.5 * loss)
        elif loss < LOSS_LOW and self._loss_based is not None:
            grown = self._loss_based * GROWTH
            self._loss_based = None if self._remb is None or grown >= self._remb else grown

    def quality(self, wanted: float | None = None) -> Quality:
        """
        The link's quality from its loss, round-trip time and estimate.

        :param wanted: Bit/s the subscriber should get for full video, if known: an
            estimate under half of it is poor, under all of it fair.
        """
        estimate = self.estimate
        ratio = estimate / wanted if wanted and estimate is not None else None
        rtt = self.rtt or 0.0
        if self.loss > LOSS_HIGH or rtt >= RTT_POOR or (ratio is not None and ratio < 0.5):
            return "poor"
        if self.loss > LOSS_LOW or rtt >= RTT_FAIR or (ratio is not None and ratio < 1.0):
            return "fair"
        return "good"


def worse(a: Quality, b: Quality) -> Quality:
    """The worse of two qualities."""
    order: tuple[Quality, ...] = ("good", "fair", "poor")
    return a if order.index(a) >= order.index(b) else b
