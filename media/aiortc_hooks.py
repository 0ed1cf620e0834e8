"""The one place that reaches into aiortc's and aioice's private names.

aiortc 1.16 is pinned because of this module; ``tests/media/test_aiortc_hooks.py`` fails
loudly when an upgrade moves any of the names or behaviours relied upon here:

* ``aioice.ice.get_host_addresses``: where host candidates come from (it skips 127.0.0.1).
* ``aiortc.rtcrtpreceiver.decoder_worker`` and ``RTCRtpReceiver.__decoder_queue``: the
  receiver hands every reassembled ``(codec, JitterFrame)`` to that queue; a tapped receiver
  gets a queue that delivers to us instead, and its decoder thread returns at once.
* ``RTCRtpReceiver._send_rtcp_pli`` and ``RTCRtpReceiver.__rtx_ssrc``: asking a publisher
  for a keyframe.
* ``RTCRtpSender._send_keyframe``: what the sender calls on an incoming PLI or FIR.
* ``RTCRtpTransceiver._codecs``: the codecs negotiated for a transceiver.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import aioice.ice
import aiortc.rtcrtpreceiver
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterFrame

EncodedFrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]
"""Receives each reassembled encoded frame of a tapped receiver, on the event loop."""

_original_get_host_addresses = aioice.ice.get_host_addresses
_original_decoder_worker = aiortc.rtcrtpreceiver.decoder_worker
_host_addresses: list[str] = []


def _configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Replacement for ``aioice.ice.get_host_addresses`` honouring :func:`use_host_addresses`."""
    if not _host_addresses:
        return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return [address for address in _host_addresses if (use_ipv6 if ":" in address else use_ipv4)]


def use_host_addresses(addresses: Sequence[str]) -> None:
    """
    Make every ICE agent of this process gather host candidates on `addresses`.

    Unlike aioice's own discovery this includes loopback addresses. Calling it again
    replaces the list; an empty list restores aioice's discovery.

    :param addresses: IPv4 or IPv6 addresses of this machine.
    """
    _host_addresses[:] = addresses
    aioice.ice.get_host_addresses = _configured_host_addresses


class _EncodedFrameTap(queue.Queue):
    """
    Stands in for a receiver's decoder queue and hands frames to a sink instead.

    ``put`` is called on the event loop by ``RTCRtpReceiver._handle_rtp_packet`` with
    ``(codec, JitterFrame)``, and with ``None`` when the receiver stops.

    :param sink: Called with each encoded frame.
    :param on_end: Called once when the receiver stops.
    """

    def __init__(self, sink: EncodedFrameSink, on_end: Callable[[], None]) -> None:
        super().__init__()
        self._sink = sink
        self._on_end = on_end

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._on_end()
        else:
            self._sink(item[0], item[1])


def _decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue,
    output_q: asyncio.Queue,
    decode_error: threading.Event,
) -> None:
    """Replacement for aiortc's ``decoder_worker``: a tapped receiver decodes nothing."""
    if isinstance(input_q, _EncodedFrameTap):
        return
    _original_decoder_worker(loop, input_q, output_q, decode_error)


def tap_encoded_frames(
    receiver: RTCRtpReceiver, sink: EncodedFrameSink, on_end: Callable[[], None]
) -> None:
    """
    Deliver a receiver's encoded frames to `sink` and never decode them.

    Call it before the receiver starts, e.g. from the peer connection's ``track`` event.
    The frames still pass aiortc's NACK, RTX and jitter buffer handling; their timestamps
    are RTP timestamps made relative to the first frame (they may exceed 32 bits).

    :param receiver: An :class:`RTCRtpReceiver` that has not started receiving.
    :param sink: Called on the event loop with ``(codec, JitterFrame)`` per frame.
    :param on_end: Called once when the receiver stops (BYE, disconnect or close).
    """
    if receiver._RTCRtpReceiver__decoder_thread is not None:  # type: ignore[attr-defined]
        raise RuntimeError("the receiver already started decoding")
    aiortc.rtcrtpreceiver.decoder_worker = _decoder_worker
    receiver._RTCRtpReceiver__decoder_queue = _EncodedFrameTap(sink, on_end)  # type: ignore[attr-defined]


async def send_picture_loss(receiver: RTCRtpReceiver) -> bool:
    """
    Send a Picture Loss Indication for the media SSRC most recently received.

    :param receiver: A started :class:`RTCRtpReceiver`.
    :return: False when no media has been received yet, so there is nobody to ask.
    """
    rtx_ssrcs = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    sources = [s for s in receiver.getSynchronizationSources() if s.source not in rtx_ssrcs]
    if not sources:
        return False
    newest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """
    Call `callback` whenever the remote peer sends a PLI or FIR for this sender.

    Senders of pre-encoded packets ignore aiortc's own force-keyframe flag, so the
    request has to travel to whoever produces the packets.

    :param sender: An :class:`RTCRtpSender`.
    :param callback: Called on the event loop for every PLI or FIR.
    """
    sender._send_keyframe = callback  # type: ignore[method-assign]


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """
    Return the media codec negotiated for a transceiver: the one the remote peer sends.

    :param transceiver: An :class:`RTCRtpTransceiver` after a description was applied.
    """
    return next((c for c in transceiver._codecs if not is_rtx(c)), None)
