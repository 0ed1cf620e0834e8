"""Who may read, review and administer recordings, and what a scoring must hold."""

from __future__ import annotations

import pytest

from recordings.access import check_admin, check_read, check_review, may_review
from recordings.errors import AdminRequired, RecordingForbidden, ReviewForbidden
from recordings.review import check_scores
from rooms.errors import InvalidPayload
from rooms.identity import Identity, Role

HOSPITAL = "h-east"


def person(role: Role, hospital: str = HOSPITAL, consult_id: str | None = None) -> Identity:
    return Identity(f"{role.value}-1", role.value.title(), role, hospital, consult_id)


def test_the_quality_team_reviews_its_own_hospitals_recordings_only() -> None:
    assert may_review(person(Role.REVIEWER), HOSPITAL)
    assert may_review(person(Role.ADMIN), HOSPITAL)
    assert not may_review(person(Role.REVIEWER, "h-west"), HOSPITAL)
    assert not may_review(person(Role.DOCTOR), HOSPITAL)
    assert not may_review(person(Role.REVIEWER, consult_id="c-1"), HOSPITAL), "a join link"
    check_review(person(Role.REVIEWER), HOSPITAL)
    with pytest.raises(ReviewForbidden):
        check_review(person(Role.DOCTOR), HOSPITAL)


def test_a_doctor_reads_the_recordings_of_the_consults_they_took_part_in() -> None:
    doctor = person(Role.DOCTOR)
    check_read(doctor, HOSPITAL, "c-1", took_part=True)
    check_read(person(Role.DOCTOR, consult_id="c-1"), HOSPITAL, "c-1", took_part=True)
    for refused, took_part in (
        (doctor, False),
        (person(Role.DOCTOR, consult_id="c-2"), True),
        (person(Role.PATIENT), True),
        (person(Role.EXPERT), True),
    ):
        with pytest.raises(RecordingForbidden):
            check_read(refused, HOSPITAL, "c-1", took_part)


def test_only_an_admin_of_the_hospital_administers_its_recordings() -> None:
    check_admin(person(Role.ADMIN), HOSPITAL)
    for refused in (
        person(Role.ADMIN, "h-west"),
        person(Role.REVIEWER),
        person(Role.ADMIN, consult_id="c-1"),
    ):
        with pytest.raises(AdminRequired):
            check_admin(refused, HOSPITAL)


def test_a_scoring_scores_every_criterion_of_the_rubric_one_to_five() -> None:
    rubric = ("Consent", "Communication")
    check_scores({"Consent": 5, "Communication": 1}, rubric)
    with pytest.raises(InvalidPayload) as refused:
        check_scores({"Consent": 6, "Courtesy": 3}, rubric)
    assert refused.value.details == [
        {"field": "scores.Courtesy", "message": "not a criterion of this hospital's rubric"},
        {"field": "scores.Communication", "message": "a score is needed"},
        {"field": "scores.Consent", "message": "must be 1 to 5"},
    ]
