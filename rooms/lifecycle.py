"""The consult lifecycle: scheduled → lobby → live → ended."""

from __future__ import annotations

from enum import StrEnum

from rooms.errors import ConsultEnded, InvalidTransition


class ConsultState(StrEnum):
    """Where a consult stands."""

    SCHEDULED = "scheduled"
    LOBBY = "lobby"
    LIVE = "live"
    ENDED = "ended"


_ALLOWED: dict[ConsultState, frozenset[ConsultState]] = {
    ConsultState.SCHEDULED: frozenset({ConsultState.LOBBY, ConsultState.LIVE, ConsultState.ENDED}),
    ConsultState.LOBBY: frozenset({ConsultState.LIVE, ConsultState.ENDED}),
    ConsultState.LIVE: frozenset({ConsultState.ENDED}),
    ConsultState.ENDED: frozenset(),
}


def transition(current: ConsultState, target: ConsultState) -> ConsultState:
    """Return ``target`` when the move is allowed; staying put is allowed except once ended.

    :raises ConsultEnded: when the consult has already ended.
    :raises InvalidTransition: for any other move the lifecycle forbids.
    """
    if current is ConsultState.ENDED:
        raise ConsultEnded("This consult has ended")
    if target is current:
        return current
    if target not in _ALLOWED[current]:
        raise InvalidTransition(f"A consult cannot go from {current} to {target}")
    return target


def on_arrival(current: ConsultState, is_host: bool) -> ConsultState:
    """The state after a participant arrives: the host's arrival makes the consult live."""
    if is_host:
        return transition(current, ConsultState.LIVE)
    if current is ConsultState.SCHEDULED:
        return transition(current, ConsultState.LOBBY)
    return transition(current, current)
