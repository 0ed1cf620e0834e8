"""One participant's media: its publisher and subscriber connections."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .api import ParticipantSession, SignalSender, Source, SpatialLayer
from .errors import InvalidCandidate
from .peer import MediaConfig, parse_candidate
from .publisher import Publisher
from .subscriber import Subscriber


class ParticipantMedia(ParticipantSession):
    """
    The two peer connections of one participant: it publishes on one, the server
    offers it everyone else's tracks on the other.

    The in-process :class:`~media.api.ParticipantSession`, where its methods are documented.

    :param participant_id: The participant.
    :param config: The media configuration.
    :param send: Sends signaling events to the participant.
    :param on_publish: Called when the participant's published tracks change.
    """

    def __init__(
        self,
        participant_id: str,
        config: MediaConfig,
        send: SignalSender,
        on_publish: Callable[[], None],
    ) -> None:
        self.participant_id = participant_id
        self.send = send
        self.publisher = Publisher(participant_id, config, on_publish)
        self.subscriber = Subscriber(participant_id, config, send)

    async def handle_publisher_offer(
        self,
        sdp: str,
        sources: Mapping[str, Source] | None = None,
        layers: Mapping[str, SpatialLayer] | None = None,
    ) -> str:
        """Apply the offer on the publisher connection; unnamed sections get default sources."""
        return await self.publisher.handle_offer(sdp, sources, layers)

    async def handle_subscriber_answer(self, sdp: str) -> None:
        """Apply the answer on the subscriber connection."""
        await self.subscriber.handle_answer(sdp)

    async def add_ice_candidate(
        self, pc: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> bool:
        """Add the candidate to the connection `pc` names, held until it has an offer."""
        if pc == "publisher":
            connection: Publisher | Subscriber = self.publisher
        elif pc == "subscriber":
            connection = self.subscriber
        else:
            raise InvalidCandidate(f"unknown peer connection {pc!r}")
        if not candidate.strip():
            await connection.add_candidate(None)
            return True
        parsed = parse_candidate(candidate, sdp_mid, sdp_mline_index)
        if parsed is None:
            return False
        await connection.add_candidate(parsed)
        return True

    async def close(self) -> None:
        """Close both connections and end the participant's published tracks."""
        await self.publisher.close()
        await self.subscriber.close()
