"""Socket.IO events of recording: the patient's consent, and the host's start and stop.

Registered with the client events of :class:`signaling.events.ConsultSignaling`; documented in
docs/protocol.md ("Recording"). Consent lives in the consult's timeline, where reviewers see it too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from recordings.errors import ConsentRequired, ConsentWithdrawn
from recordings.service import StopReason
from rooms.errors import Forbidden
from rooms.identity import Role
from signaling.events import ConsultSignaling
from signaling.protocol import Connection, consult_room, lobby_room
from signaling.schemas import Strict

logger = logging.getLogger(__name__)


class RecordingConsentIn(Strict):
    """The patient agrees to the recording (or withdraws the agreement)."""

    agree: bool = True


class AttestedConsentIn(Strict):
    """The host attests that the patient agreed aloud, and says why it is attested."""

    reason: str = Field(min_length=3, max_length=500)


class StartRecordingIn(Strict):
    """Start recording; ``attested_consent`` when the patient agreed aloud, not in the page."""

    attested_consent: AttestedConsentIn | None = None


class EmptyRecordingIn(Strict):
    """``stop_recording`` takes no fields."""


class RecordingEvents:
    """
    The recording events of live consults.

    :param signaling: The Socket.IO side of live consults.
    """

    def __init__(self, signaling: ConsultSignaling) -> None:
        self._signaling = signaling
        self._services = signaling.services
        register = signaling.client_events.register
        register("recording_consent", RecordingConsentIn, self._consent)
        register("start_recording", StartRecordingIn, self._start)
        register("stop_recording", EmptyRecordingIn, self._stop)
        self._services.recordings.on_stopped(self._announce_stop)
        signaling.departure_listeners.append(self._check_recorders)

    async def _broadcast(self, consult_id: str, **extra: Any) -> dict[str, Any]:
        state = {**await self._services.recordings.state(consult_id), **extra}
        # The lobby hears it too: a waiting patient knows they will enter a recorded consult.
        for room in (consult_room(consult_id), lobby_room(consult_id)):
            await self._signaling.sio.emit("recording_state", state, room=room)
        return state

    async def _announce_stop(self, consult_id: str, reason: StopReason) -> None:
        """Every stop, whoever or whatever stopped it, reaches the consult with its reason."""
        await self._broadcast(consult_id, stop_reason=reason)

    async def _check_recorders(self, consult_id: str) -> None:
        """After a departure: a recording nobody present may stop any more stops now."""
        recordings = self._services.recordings
        if recordings.active(consult_id) is None:
            return
        try:
            presence = await self._services.registry.presence(consult_id)
            joined = [pid for pid, where in presence.items() if where.status == "joined"]
            await recordings.recorders_present(consult_id, joined)
        except Exception:
            logger.exception("recorders not checked", extra={"consult_id": consult_id})

    async def _consent(
        self, sid: str, connection: Connection, payload: RecordingConsentIn
    ) -> dict[str, Any]:
        # Joined or still waiting in the lobby: the host often asks while admitting.
        consult_id, participant = connection.joined()
        if participant.role is not Role.PATIENT:
            raise Forbidden("Only the patient gives consent to recording")
        kind = "recording_consent" if payload.agree else "recording_consent_withdrawn"
        detail = {"method": "patient", "participant_id": participant.id}
        await self._services.consults.note(consult_id, connection.identity, kind, detail)
        logger.info("recording consent", extra={"consult_id": consult_id, "agree": payload.agree})
        recordings = self._services.recordings
        if not payload.agree and recordings.active(consult_id) is not None:
            # Consent withdrawn: the recording stops at once, and its stop is announced.
            await recordings.stop(connection.identity, consult_id, "consent_withdrawn")
            return await recordings.state(consult_id)
        return await self._broadcast(consult_id)

    async def _start(
        self, sid: str, connection: Connection, payload: StartRecordingIn
    ) -> dict[str, Any]:
        consult_id, _ = connection.joined()
        if not connection.grants.record:
            raise Forbidden("Only the host may start the recording")
        identity = connection.identity
        services = self._services
        consult = await services.consults.get(identity, consult_id)
        now = datetime.now(UTC).isoformat()
        if await services.recordings.withdrawn(consult_id):
            # The patient's own "no" outweighs any attestation; only the patient can undo it.
            raise ConsentWithdrawn("The patient withdrew consent to the recording")
        patient_consent = await services.recordings.consent(consult_id)
        if patient_consent is not None:
            consent: dict[str, Any] = {
                "method": "patient",
                "by": patient_consent.actor_sub,
                "name": patient_consent.actor_name,
                "at": patient_consent.at.isoformat(),
            }
        elif payload.attested_consent is not None:
            record = await services.hospitals.get(consult.hospital)
            if record is not None and record.profile.recording.consent == "patient_only":
                raise ConsentRequired(
                    "This hospital records only with the patient's own agreement in the page"
                )
            consent = {
                "method": "attested",
                "by": identity.sub,
                "name": identity.name,
                "at": now,
                "reason": payload.attested_consent.reason,
            }
            await services.consults.note(
                consult_id,
                identity,
                "recording_consent_attested",
                {"method": "attested", "reason": payload.attested_consent.reason},
            )
        elif not any(p.role is Role.PATIENT for p in consult.participants):
            consent = {"method": "no_patient", "by": identity.sub, "name": identity.name, "at": now}
        else:
            raise ConsentRequired(
                "The patient has not agreed to the recording: ask them, or attest verbal consent"
            )
        await services.recordings.start(identity, consult, consent)
        if await services.recordings.withdrawn(consult_id):
            # The patient said no while it started (their event does not wait for this one).
            await services.recordings.stop(identity, consult_id, "consent_withdrawn")
            raise ConsentWithdrawn("The patient withdrew consent to the recording")
        return await self._broadcast(consult_id)

    async def _stop(
        self, sid: str, connection: Connection, payload: EmptyRecordingIn
    ) -> dict[str, Any]:
        consult_id, _ = connection.joined()
        if not connection.grants.record:
            raise Forbidden("Only the host may stop the recording")
        await self._services.recordings.stop(connection.identity, consult_id, "host")
        # The stop was announced to everyone, with its reason, once it was catalogued.
        return await self._services.recordings.state(consult_id)
