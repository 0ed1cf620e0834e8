"""Audio codecs: every frame stands alone, so a listener can start at any packet."""

from __future__ import annotations

from .base import CodecStrategy, RecordingFormat


class AudioCodec(CodecStrategy):
    """
    An audio codec: no keyframes to wait for, no picture numbers.

    :param mime_type: The codec's MIME type, e.g. ``audio/opus``.
    :param recording: How the recorder stores it; None when it is not recorded.
    """

    def __init__(self, mime_type: str, recording: RecordingFormat | None = None) -> None:
        super().__init__(mime_type, recording)

    def is_keyframe(self, frame: bytes) -> bool:
        """
        Audio frames never depend on earlier ones for a new listener.

        :param frame: An encoded audio frame.
        """
        return True

    def starts_keyframe(self, payload: bytes, data: bytes) -> bool:
        """
        A new listener can start at any audio packet.

        :param payload: The RTP payload.
        :param data: The same payload, depayloaded.
        """
        return True


OPUS = AudioCodec("audio/opus", RecordingFormat("opus", "webm", "webm"))
"""Opus: what browsers send; recorded into WebM."""

# The other audio codecs aiortc can negotiate: forwarded, not recorded.
G722 = AudioCodec("audio/G722")
PCMU = AudioCodec("audio/PCMU")
PCMA = AudioCodec("audio/PCMA")
