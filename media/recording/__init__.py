"""Recording of consults: tracks muxed as they arrive, manifests, the catalogue and its review."""

from .manifest import Manifest, TrackEntry
from .recorder import ConsultRecorder

__all__ = ["ConsultRecorder", "Manifest", "TrackEntry"]
