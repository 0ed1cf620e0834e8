"""Arrivals as the consult's state records them, when participants arrive at the same moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from config.database import Database
from rooms.identity import Identity, Role
from rooms.lifecycle import ConsultState
from rooms.service import ConsultService, ConsultSpec, Invitee

HOSPITAL = "h-east"
COORDINATOR = Identity("coord-1", "Coordinator", Role.COORDINATOR, HOSPITAL)
DOCTOR = Invitee("dr-wang", "Dr. Wang Fang", Role.DOCTOR)
PATIENT = Invitee("pt-li", "Li Hua", Role.PATIENT)


def person(invitee: Invitee) -> Identity:
    return Identity(invitee.sub, invitee.name, invitee.role, HOSPITAL)


async def test_a_doctor_and_a_patient_arriving_together_leave_the_consult_live(
    database: Database,
) -> None:
    """The patient's arrival (scheduled → lobby) must never undo the doctor's (→ live): each
    arrival moves the state from the one it read only if nobody moved it meanwhile."""
    consults = ConsultService(database)
    for _ in range(5):
        consult = await consults.schedule(
            COORDINATOR,
            ConsultSpec("visit", HOSPITAL, "Follow-up", datetime.now(UTC), DOCTOR, [PATIENT]),
        )
        doctor, patient = await asyncio.gather(
            consults.arrive(person(DOCTOR), consult.id),
            consults.arrive(person(PATIENT), consult.id),
        )
        assert doctor.consult.state is ConsultState.LIVE
        assert patient.waits_in_lobby
        stored = await consults.get(COORDINATOR, consult.id)
        assert stored.state is ConsultState.LIVE
        assert stored.started_at is not None
        kinds = [entry.kind for entry in await consults.timeline_of(consult.id)]
        assert sorted(kinds) == ["joined", "scheduled", "waiting"]


async def test_a_host_who_arrives_again_does_not_start_the_consult_again(
    database: Database,
) -> None:
    consults = ConsultService(database)
    consult = await consults.schedule(
        COORDINATOR,
        ConsultSpec("visit", HOSPITAL, "Follow-up", datetime.now(UTC), DOCTOR, [PATIENT]),
    )
    first = await consults.arrive(person(DOCTOR), consult.id)
    again = await consults.arrive(person(DOCTOR), consult.id)
    assert first.consult.started_at is not None
    assert again.consult.started_at == first.consult.started_at
    stored = await consults.get(COORDINATOR, consult.id)
    assert stored.started_at == first.consult.started_at


async def test_an_arrival_reads_the_last_chat_messages_and_the_latest_word_on_recording(
    database: Database,
) -> None:
    """What a join shows of the consult's past: its last chat messages, oldest first, and the
    patient's latest word on recording, however many other entries came after them."""
    consults = ConsultService(database)
    consult = await consults.schedule(
        COORDINATOR,
        ConsultSpec("visit", HOSPITAL, "Follow-up", datetime.now(UTC), DOCTOR, [PATIENT]),
    )
    doctor, patient = person(DOCTOR), person(PATIENT)
    for n in range(4):
        await consults.note(consult.id, doctor, "chat", {"text": f"message {n}"})
    await consults.note(consult.id, patient, "recording_consent")
    await consults.note(consult.id, patient, "recording_consent_withdrawn")
    await consults.note(consult.id, patient, "chat", {"text": "message 4"})
    chat, consent = await consults.latest_events_of_each(
        consult.id,
        [(("chat",), 3), (("recording_consent", "recording_consent_withdrawn"), 1)],
    )
    assert [entry.detail["text"] for entry in chat] == ["message 2", "message 3", "message 4"]
    assert [entry.kind for entry in consent] == ["recording_consent_withdrawn"]
    assert await consults.latest_events_of_each(consult.id, [(("admitted",), 5)]) == [[]]
