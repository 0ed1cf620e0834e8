"""One participant's media: its publisher and subscriber connections."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .errors import InvalidCandidate
from .peer import MediaConfig, SignalSender, parse_candidate
from .publisher import Publisher, Source
from .subscriber import Subscriber


class ParticipantMedia:
    """
    The two peer connections of one participant: it publishes on one, the server
    offers it everyone else's tracks on the other.

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
        self.publisher = Publisher(participant_id, config, on_publish)
        self.subscriber = Subscriber(participant_id, config, send)

    async def handle_publisher_offer(
        self, sdp: str, sources: Mapping[str, Source] | None = None
    ) -> str:
        """
        Apply an offer on the publisher connection and return the answer SDP.

        :param sdp: The offer; adding or removing a track is another offer.
        :param sources: Optional ``{mid: "camera"|"microphone"|"screen"}`` naming what each
            media section carries; by default the first audio section is the microphone,
            the first video section the camera and any further one the screen.
        :raises InvalidSdp: when the offer cannot be applied.
        """
        return await self.publisher.handle_offer(sdp, sources)

    async def handle_subscriber_answer(self, sdp: str) -> None:
        """
        Apply the answer to the outstanding subscriber offer.

        :param sdp: The answer SDP.
        :raises NoPendingOffer: without an outstanding subscriber offer.
        :raises InvalidSdp: when the answer cannot be applied.
        """
        await self.subscriber.handle_answer(sdp)

    async def add_ice_candidate(
        self, pc: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> bool:
        """
        Add a trickled candidate of the client; an empty one ends its candidates.

        :param pc: ``publisher`` or ``subscriber``.
        :param candidate: The candidate attribute, with or without ``candidate:``.
        :param sdp_mid: The media section's mid.
        :param sdp_mline_index: The media section's index.
        :return: False when the candidate is ignored (mDNS ``.local`` or not UDP).
        :raises InvalidCandidate: when it cannot be parsed or names no connection.
        """
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
