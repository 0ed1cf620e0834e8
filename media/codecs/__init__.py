"""What the forwarding core and the recorder know of each codec: one strategy per codec.

:func:`codec_for` is the one place a MIME type is turned into its :class:`CodecStrategy`;
a codec without one is refused with :class:`~media.errors.UnsupportedCodec`.
"""

from __future__ import annotations

from ..errors import UnsupportedCodec
from .audio import G722, OPUS, PCMA, PCMU
from .base import CodecStrategy, PictureNumbers, RecordingFormat
from .h264 import H264
from .vp8 import VP8, Vp8Descriptor

#: Every codec aiortc can negotiate, by lower-case MIME type.
CODECS: dict[str, CodecStrategy] = {
    codec.mime_type.lower(): codec for codec in (VP8, H264, OPUS, G722, PCMU, PCMA)
}


def codec_for(mime_type: str) -> CodecStrategy:
    """
    Return the strategy of a codec.

    :param mime_type: The codec's MIME type, in any case, e.g. ``video/VP8``.
    :raises UnsupportedCodec: when the forwarding core does not know the codec.
    """
    codec = CODECS.get(mime_type.lower())
    if codec is None:
        raise UnsupportedCodec(f"cannot forward {mime_type}: no strategy for this codec")
    return codec


__all__ = [
    "CODECS",
    "H264",
    "OPUS",
    "VP8",
    "CodecStrategy",
    "PictureNumbers",
    "RecordingFormat",
    "Vp8Descriptor",
    "codec_for",
]
