"""Recording on the live path: tracks muxed as they arrive, manifests, crash recovery."""

from .manifest import Manifest, TrackEntry
from .recorder import ConsultRecorder

__all__ = ["ConsultRecorder", "Manifest", "TrackEntry"]
