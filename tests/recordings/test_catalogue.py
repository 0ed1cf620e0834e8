"""The catalogue as its readers see it: each finds the recordings they may; consent on record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from config.database import Database
from config.secrets import SecretBox
from config.settings import Settings
from media import MediaConfig, MediaServer
from recordings.catalogue import RecordingFilter
from recordings.models import Recording
from recordings.service import RecordingService, build_recordings
from rooms.hospitals import HospitalDirectory
from rooms.identity import Identity, Role
from rooms.service import ConsultService, ConsultSpec, Invitee

HOSPITAL = "h-east"
COORDINATOR = Identity("coord-1", "Coordinator", Role.COORDINATOR, HOSPITAL)
DR_WANG = Invitee("dr-wang", "Dr. Wang Fang", Role.DOCTOR)
DR_ZHAO = Invitee("dr-zhao", "Dr. Zhao Lei", Role.DOCTOR)
PATIENT = Invitee("pt-li", "Li Hua", Role.PATIENT)


@pytest.fixture
async def recordings(
    settings: Settings, database: Database
) -> AsyncIterator[tuple[ConsultService, RecordingService]]:
    media = MediaServer(MediaConfig(addresses=["127.0.0.1"], ice_servers=[]))
    consults = ConsultService(database)
    hospitals = HospitalDirectory(database, SecretBox.from_settings(settings))
    yield consults, build_recordings(settings, database, media, consults, hospitals)
    await media.shutdown()


async def recorded(
    consults: ConsultService,
    service: RecordingService,
    host: Invitee,
    others: list[Invitee],
    minutes_ago: int,
) -> str:
    """A consult with a finished recording; its consult id."""
    kind = "visit" if PATIENT in others else "referral"
    consult = await consults.schedule(
        COORDINATOR,
        ConsultSpec(kind, HOSPITAL, "Follow-up", datetime.now(UTC), host, others),
    )
    await service.catalogue.create(
        Recording(
            consult_id=consult.id,
            hospital_id=HOSPITAL,
            doctor_sub=host.sub,
            doctor_name=host.name,
            kind=kind,
            title=consult.title,
            started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago),
            started_by=host.sub,
            status="complete",
        )
    )
    return consult.id


async def test_doctors_find_the_recordings_of_their_consults_and_reviewers_their_hospitals(
    recordings: tuple[ConsultService, RecordingService],
) -> None:
    consults, service = recordings
    visit = await recorded(consults, service, DR_WANG, [PATIENT], minutes_ago=30)
    referral = await recorded(consults, service, DR_ZHAO, [DR_WANG], minutes_ago=20)
    other_visit = await recorded(consults, service, DR_ZHAO, [PATIENT], minutes_ago=10)

    def doctor(invitee: Invitee) -> Identity:
        return Identity(invitee.sub, invitee.name, Role.DOCTOR, HOSPITAL)

    async def found(who: Identity, where: RecordingFilter | None = None) -> list[str]:
        return [r.consult_id for r in await service.access.search(who, where or RecordingFilter())]

    assert await found(doctor(DR_WANG)) == [referral, visit], "newest first"
    assert await found(doctor(DR_ZHAO)) == [other_visit, referral]
    assert await found(doctor(DR_WANG), RecordingFilter(kind="visit")) == [visit]
    reviewer = Identity("rev-1", "Quality Reviewer", Role.REVIEWER, HOSPITAL)
    assert await found(reviewer) == [other_visit, referral, visit]
    listings = await service.audit.entries(resource_type="recording", resource_id="*")
    assert [(e.actor_sub, e.detail) for e in listings][:2] == [
        ("rev-1", {"count": 3}),
        ("dr-wang", {"count": 1}),
    ]


async def test_the_patients_latest_word_on_consent_counts(
    recordings: tuple[ConsultService, RecordingService],
) -> None:
    consults, service = recordings
    consult = await consults.schedule(
        COORDINATOR, ConsultSpec("visit", HOSPITAL, "Visit", datetime.now(UTC), DR_WANG, [PATIENT])
    )
    patient = Identity(PATIENT.sub, PATIENT.name, Role.PATIENT, HOSPITAL)
    assert await service.consent(consult.id) is None

    await consults.note(consult.id, patient, "recording_consent", {"method": "patient"})
    await consults.note(consult.id, patient, "chat", {})
    given = await service.consent(consult.id)
    assert given is not None and given.actor_name == "Li Hua"

    await consults.note(consult.id, patient, "recording_consent_withdrawn", {})
    assert await service.consent(consult.id) is None
    state = await service.state(consult.id)
    assert state["recording"] is False and state["consent"]["given"] is False
