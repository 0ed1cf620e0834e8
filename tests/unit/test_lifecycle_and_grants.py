"""The consult lifecycle and the grants each participant gets."""

from __future__ import annotations

import pytest

from rooms.errors import ConsultEnded, InvalidTransition
from rooms.grants import NO_GRANTS, grants_for
from rooms.identity import Role
from rooms.lifecycle import ConsultState, on_arrival, transition


def test_a_consult_moves_from_scheduled_through_lobby_and_live_to_ended() -> None:
    state = ConsultState.SCHEDULED
    state = on_arrival(state, is_host=False)
    assert state is ConsultState.LOBBY
    state = on_arrival(state, is_host=True)
    assert state is ConsultState.LIVE
    assert on_arrival(state, is_host=False) is ConsultState.LIVE
    assert transition(state, ConsultState.ENDED) is ConsultState.ENDED


def test_the_host_arriving_first_makes_the_consult_live() -> None:
    assert on_arrival(ConsultState.SCHEDULED, is_host=True) is ConsultState.LIVE


def test_a_live_consult_cannot_go_back_to_the_lobby() -> None:
    with pytest.raises(InvalidTransition):
        transition(ConsultState.LIVE, ConsultState.LOBBY)


@pytest.mark.parametrize("target", list(ConsultState))
def test_nothing_leaves_the_ended_state(target: ConsultState) -> None:
    with pytest.raises(ConsultEnded):
        transition(ConsultState.ENDED, target)


def test_a_scheduled_consult_can_be_cancelled() -> None:
    assert transition(ConsultState.SCHEDULED, ConsultState.ENDED) is ConsultState.ENDED


def test_the_host_may_admit_end_record_and_moderate() -> None:
    grants = grants_for(Role.DOCTOR, is_host=True, removed=False, ended=False)
    assert grants.join and grants.publish and grants.subscribe
    assert grants.admit and grants.end and grants.record and grants.moderate
    assert not grants.lobby


def test_a_patient_waits_in_the_lobby_and_may_not_run_the_consult() -> None:
    grants = grants_for(Role.PATIENT, is_host=False, removed=False, ended=False)
    assert grants.join and grants.lobby and grants.publish and grants.subscribe
    assert not (grants.admit or grants.end or grants.record or grants.moderate)


def test_an_invited_expert_joins_directly_without_host_rights() -> None:
    grants = grants_for(Role.EXPERT, is_host=False, removed=False, ended=False)
    assert grants.join and not grants.lobby
    assert not (grants.admit or grants.end or grants.record or grants.moderate)


@pytest.mark.parametrize("role", [Role.PATIENT, Role.DOCTOR, Role.EXPERT])
def test_removed_participants_and_ended_consults_grant_nothing(role: Role) -> None:
    assert grants_for(role, is_host=False, removed=True, ended=False) == NO_GRANTS
    assert grants_for(role, is_host=True, removed=False, ended=True) == NO_GRANTS
