"""The errors the media core reports to the signaling layer, each with its protocol code."""

from __future__ import annotations

from rooms.errors import DomainError


class MediaError(DomainError):
    """A media request that could not be carried out; the subclasses say why."""

    code, status = "media_error", 422


class InvalidSdp(MediaError):
    """An offer or answer that is not SDP, or that the peer connection cannot apply."""

    code, status = "invalid_sdp", 422


class TooManyTracks(MediaError):
    """An offer that sends two tracks of one source: a publisher sends at most one of each."""

    code, status = "too_many_tracks", 422


class InvalidLayer(MediaError):
    """An offer naming a low layer that is not a camera's video, or a second low layer."""

    code, status = "invalid_layer", 422


class MediaPortsExhausted(MediaError):
    """Every UDP port of this node's media range is taken: no new connection until one ends."""

    code, status = "media_ports_exhausted", 503

    def __init__(self, first: int, last: int) -> None:
        super().__init__(f"no free UDP port in the media range {first}-{last}")


class InvalidCandidate(MediaError):
    """A trickled ICE candidate that cannot be parsed, or names no media section."""

    code, status = "invalid_candidate", 422


class NoPendingOffer(MediaError):
    """A subscriber answer while the server has no offer outstanding."""

    code, status = "no_pending_offer", 409


class AlreadyRecording(MediaError):
    """A second recording of a consult whose media is already being recorded."""

    code, status = "already_recording", 409


class UnsupportedCodec(MediaError, ValueError):
    """A codec the forwarding core has no strategy for (see :mod:`media.codecs`)."""

    code, status = "unsupported_codec", 422
