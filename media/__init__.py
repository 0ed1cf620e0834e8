"""WebRTC media: the typed seam signaling uses, and the forwarding SFU behind it in this process."""

from .api import (
    ConsultMediaSession,
    MediaHost,
    MediaLoad,
    ParticipantSession,
    RecordingHandle,
    SignalSender,
    Source,
)
from .consult import ConsultMedia
from .errors import (
    AlreadyRecording,
    InvalidCandidate,
    InvalidSdp,
    MediaError,
    NoPendingOffer,
    UnsupportedCodec,
)
from .participant import ParticipantMedia
from .peer import MediaConfig
from .server import MediaServer

__all__ = [
    "AlreadyRecording",
    "ConsultMedia",
    "ConsultMediaSession",
    "InvalidCandidate",
    "InvalidSdp",
    "MediaConfig",
    "MediaError",
    "MediaHost",
    "MediaLoad",
    "MediaServer",
    "NoPendingOffer",
    "ParticipantMedia",
    "ParticipantSession",
    "RecordingHandle",
    "SignalSender",
    "Source",
    "UnsupportedCodec",
]
