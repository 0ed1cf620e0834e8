"""The typed seam between signaling and media: what an event handler needs of a consult's media.

Signaling depends on these protocols only. Their one implementation today runs in this process
(:class:`media.MediaServer`, :class:`media.ConsultMedia`, :class:`media.ParticipantMedia`); one
that hosts media in another process can stand behind the same methods, which take and return
ids, SDP strings and plain dictionaries, and refuse with :class:`media.errors.MediaError` codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:  # the recorder's modules import this one
    from .recording.manifest import Manifest

Source = Literal["camera", "microphone", "screen"]
"""What a published track carries: the participant's camera, microphone or screen share."""

SpatialLayer = Literal["low"]
"""A layer a publisher sends besides the full camera: ``low``, the same camera at a quarter of
its size and a low bit rate, forwarded to subscribers whose link cannot take the full one."""

SignalSender = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Sends one event ``(name, payload)`` to one participant (``subscriber_offer``,
``receive_mode``, ``link_quality``)."""


class ParticipantSession(Protocol):
    """One participant's media: the connection it publishes on and the one it receives on."""

    async def handle_publisher_offer(
        self,
        sdp: str,
        sources: Mapping[str, Source] | None = None,
        layers: Mapping[str, SpatialLayer] | None = None,
    ) -> str:
        """
        Apply an offer on the publisher connection and return the answer SDP.

        :param sdp: The offer; adding or removing a track is another offer.
        :param sources: Optional ``{mid: source}`` naming what each media section carries.
        :param layers: Optional ``{mid: "low"}``: the section carries the low layer of its
            source (a camera), not a track of its own.
        :raises InvalidSdp: when the offer cannot be applied.
        :raises InvalidLayer: when a low layer is not a camera's video, or a second one.
        """
        ...

    async def handle_subscriber_answer(self, sdp: str) -> None:
        """
        Apply the answer to the outstanding ``subscriber_offer``.

        :param sdp: The answer SDP.
        :raises NoPendingOffer: without an outstanding offer.
        :raises InvalidSdp: when the answer cannot be applied.
        """
        ...

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
        ...


class RecordingHandle(Protocol):
    """A running recording of a consult's media."""

    @property
    def recording_id(self) -> str:
        """The recording's id."""
        ...

    @property
    def finished(self) -> asyncio.Future[Manifest]:
        """Resolves to the complete manifest once the recording stopped, however it stopped."""
        ...


class ConsultMediaSession(Protocol):
    """The media of one consult (LiveKit's room): who publishes, who receives, what is recorded."""

    async def join(self, participant_id: str, send: SignalSender) -> ParticipantSession:
        """
        Give a participant its connections; it is offered the others' tracks at once.

        Joining again replaces the participant's previous connections.

        :param participant_id: The participant.
        :param send: Sends events (``subscriber_offer``) to this participant.
        """
        ...

    async def leave(self, participant_id: str) -> None:
        """
        Close a participant's connections and withdraw its tracks from the others.

        :param participant_id: The participant; unknown ids are ignored.
        """
        ...

    def set_muted(self, participant_id: str, source: Source, muted: bool) -> None:
        """
        Stop or resume forwarding a participant's source to everyone, now and when published.

        :param participant_id: The participant.
        :param source: ``camera``, ``microphone`` or ``screen``.
        :param muted: True to stop forwarding.
        """
        ...

    async def set_audio_only(self, participant_id: str, enabled: bool) -> None:
        """
        Stop (or resume) forwarding any video to a participant who chose audio only.

        The participant is sent ``receive_mode`` with the reason ``chosen``.

        :param participant_id: The participant; unknown ids are ignored.
        :param enabled: True for audio only.
        """
        ...

    def start_recording(self, recording_dir: Path, manifest: Manifest) -> RecordingHandle:
        """
        Record every published track, and tracks published later, until :meth:`stop_recording`.

        :param recording_dir: The recording's own folder (created).
        :param manifest: Its manifest: recording id, consult, participants, consent.
        :raises AlreadyRecording: when a recording of this consult runs.
        """
        ...

    async def stop_recording(self) -> Manifest | None:
        """Stop the recording, if one runs; its complete manifest."""
        ...


class MediaLoad(NamedTuple):
    """What a process's media carries: consults, publishing participants, forwarded tracks."""

    consults: int
    publishers: int
    forwarded: int


class MediaHost(Protocol):
    """The consults whose media one server process hosts."""

    @property
    def consult_ids(self) -> list[str]:
        """The consults whose media is hosted here."""
        ...

    def load(self) -> MediaLoad:
        """What the hosted media carries now (the cluster places consults by it)."""
        ...

    def room(self, consult_id: str) -> ConsultMediaSession:
        """
        Return the media of a consult, creating it on first use.

        :param consult_id: The consult.
        """
        ...

    async def close_room(self, consult_id: str) -> None:
        """
        Close a consult's media (the consult ended).

        :param consult_id: The consult; unknown ids are ignored.
        """
        ...

    async def shutdown(self) -> None:
        """Close every consult's media."""
        ...
