"""The errors the media core reports to the signaling layer."""

from __future__ import annotations


class MediaError(Exception):
    """
    A media request that could not be carried out, with a protocol error code.

    :param code: One of ``invalid_sdp``, ``invalid_candidate``, ``no_pending_offer``.
    :param message: A sentence for humans.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
