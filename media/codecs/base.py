"""The strategy every codec implements for the forwarding core and the recorder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RecordingFormat:
    """
    How the recorder stores a codec's encoded frames, without transcoding them.

    :param codec: PyAV's name of the codec.
    :param container: The container format PyAV writes.
    :param extension: The file name extension.
    """

    codec: str
    container: str
    extension: str


class PictureNumbers(Protocol):
    """The picture numbers a payload descriptor carries, which a down track keeps continuous."""

    @property
    def picture_id(self) -> int:
        """The picture's number, 15 bits at most."""
        ...

    @property
    def tl0_index(self) -> int | None:
        """The number of the last base-layer picture (TL0PICIDX), 8 bits, if present."""
        ...

    @property
    def temporal_id(self) -> int | None:
        """The picture's temporal layer, 0 for the base layer; None when not layered."""
        ...

    @property
    def layer_sync(self) -> bool:
        """Whether a subscriber may start receiving this picture's layer here."""
        ...

    def rewrite(self, payload: bytes, picture_offset: int, tl0_offset: int) -> bytes:
        """
        Return `payload` with its picture numbers moved forward by the given offsets.

        :param payload: The payload these numbers were parsed from.
        :param picture_offset: Added to the picture number, modulo its width.
        :param tl0_offset: Added to the TL0PICIDX, modulo 256.
        """
        ...


class CodecStrategy(ABC):
    """
    What the forwarding core and the recorder know of one codec, without decoding it.

    A packet's RTP payload is what the publisher sent; its *data* is the same payload
    depayloaded by aiortc's receiver (the payload descriptor stripped, H.264 NAL units
    behind start codes); a *frame* is the data of all the packets of one picture (or one
    audio frame), reassembled by aiortc's jitter buffer.

    :param mime_type: The codec's MIME type as aiortc spells it, e.g. ``video/VP8``.
    :param recording: How the recorder stores it; None when it is not recorded.
    """

    #: True when payload descriptors carry picture numbers (:meth:`picture_numbers`).
    numbers_pictures = False

    def __init__(self, mime_type: str, recording: RecordingFormat | None) -> None:
        self.mime_type = mime_type
        self.kind = mime_type.split("/")[0].lower()
        self.recording = recording

    @abstractmethod
    def is_keyframe(self, frame: bytes) -> bool:
        """
        Tell whether a decoder can start at this encoded frame.

        :param frame: A whole encoded frame.
        """

    @abstractmethod
    def starts_keyframe(self, payload: bytes, data: bytes) -> bool:
        """
        Tell whether a new subscriber can start at this RTP packet.

        :param payload: The RTP payload, payload descriptor included.
        :param data: The same payload, depayloaded.
        """

    def picture_numbers(self, payload: bytes) -> PictureNumbers | None:
        """
        The picture numbers of a packet's payload descriptor; None when it has none.

        :param payload: The RTP payload, payload descriptor included.
        """
        return None

    def picture_size(self, keyframe: bytes) -> tuple[int, int] | None:
        """
        The picture size a video keyframe announces; None when it announces none.

        :param keyframe: An encoded keyframe.
        """
        return None
