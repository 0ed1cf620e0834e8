"""The media server of one process: the consults whose media it hosts."""

from __future__ import annotations

import logging

from .aiortc_hooks import (
    negotiate_opus,
    route_retransmissions,
    share_certificate,
    tolerate_consent_delays,
    use_host_addresses,
)
from .api import MediaHost, MediaLoad
from .consult import ConsultMedia
from .peer import MediaConfig

logger = logging.getLogger(__name__)


class MediaServer(MediaHost):
    """
    Hosts the media of consults in this process; one per process.

    Creating it makes ICE gather host candidates on ``config.addresses``, aiortc deliver
    retransmissions to receivers that share a transport with other video, and ICE keep
    consent while its answers merely come late (a busy event loop), and every peer connection
    of the process share one DTLS certificate. It is the in-process
    :class:`~media.api.MediaHost`, where its methods are documented.

    :param config: The media configuration.
    """

    def __init__(self, config: MediaConfig) -> None:
        self._config = config
        self._rooms: dict[str, ConsultMedia] = {}
        use_host_addresses(config.addresses)
        route_retransmissions()
        tolerate_consent_delays()
        negotiate_opus(config.voice_bitrate)
        share_certificate()
        logger.info("media host addresses: %s", config.addresses or "discovered")

    @property
    def consult_ids(self) -> list[str]:
        """The consults whose media this process hosts."""
        return list(self._rooms)

    def load(self) -> MediaLoad:
        """What the hosted media carries now."""
        publishers = forwarded = 0
        for room in self._rooms.values():
            room_publishers, room_forwarded = room.load()
            publishers += room_publishers
            forwarded += room_forwarded
        return MediaLoad(len(self._rooms), publishers, forwarded)

    def room(self, consult_id: str) -> ConsultMedia:
        """Return the media of a consult, creating it on first use."""
        room = self._rooms.get(consult_id)
        if room is None:
            room = self._rooms[consult_id] = ConsultMedia(consult_id, self._config)
        return room

    async def close_room(self, consult_id: str) -> None:
        """Close a consult's media and forget it."""
        room = self._rooms.pop(consult_id, None)
        if room is not None:
            await room.close()

    async def shutdown(self) -> None:
        """Close every consult's media."""
        for consult_id in list(self._rooms):
            await self.close_room(consult_id)
