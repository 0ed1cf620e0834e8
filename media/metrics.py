"""Prometheus figures of each subscriber's link and layers, without consult labels."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from .subscriber import Subscriber

ESTIMATE = Histogram(
    "teleconsult_subscriber_estimate_bits_per_second",
    "Each subscriber's link estimate (REMB and loss), sampled every second",
    buckets=(50e3, 100e3, 150e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6),
)
RECEIVED = Histogram(
    "teleconsult_subscriber_forwarded_bits_per_second",
    "Payload bit rate forwarded to each subscriber, sampled every second",
    buckets=(25e3, 50e3, 100e3, 250e3, 500e3, 1e6, 2e6, 4e6),
)
LOSS = Histogram(
    "teleconsult_subscriber_loss_ratio",
    "Each subscriber's smoothed packet loss from its receiver reports, sampled every second",
    buckets=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
)
RTT = Histogram(
    "teleconsult_subscriber_rtt_seconds",
    "Each subscriber's round-trip time from its receiver reports, sampled every second",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
VIDEO_SECONDS = Counter(
    "teleconsult_forwarded_video_seconds_total",
    "Seconds of video forwarded to subscribers by temporal layer (paused: not forwarded); "
    "its rate is the number of videos at each layer",
    ["layer"],
)
AUDIO_ONLY_SECONDS = Counter(
    "teleconsult_audio_only_seconds_total",
    "Seconds subscribers received audio only, by reason (weak_connection, chosen)",
    ["reason"],
)


def observe(subscriber: Subscriber, interval: float) -> None:
    """
    Record one subscriber's figures after a round of layer choices.

    :param subscriber: The subscriber.
    :param interval: Seconds the round stands for.
    """
    link = subscriber.link
    if link.estimate is not None:
        ESTIMATE.observe(link.estimate)
    RECEIVED.observe(subscriber.sent_bitrate)
    LOSS.observe(link.loss)
    if link.rtt is not None:
        RTT.observe(link.rtt)
    audio_only, reason = subscriber.receive_mode
    if audio_only and reason is not None:
        AUDIO_ONLY_SECONDS.labels(reason).inc(interval)
    for layer in subscriber.video_layers():
        VIDEO_SECONDS.labels("paused" if layer is None else str(layer)).inc(interval)
