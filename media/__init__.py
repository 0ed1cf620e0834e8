"""WebRTC media: per-participant server peers, the forwarding SFU, recording."""

from .consult import ConsultMedia
from .errors import MediaError
from .participant import ParticipantMedia
from .peer import MediaConfig, SignalSender
from .publisher import Source
from .server import MediaServer

__all__ = [
    "ConsultMedia",
    "MediaConfig",
    "MediaError",
    "MediaServer",
    "ParticipantMedia",
    "SignalSender",
    "Source",
]
