"""Grants: what one participant may do in one consult, derived once, as data (LiveKit's grants)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rooms.identity import Role


@dataclass(frozen=True, slots=True)
class ConsultGrants:
    """The rights of a participant in a consult.

    :param join: may enter the consult (or its lobby).
    :param lobby: must wait in the lobby until a host admits them.
    :param publish: may send camera, microphone and screen.
    :param subscribe: may receive the others' media.
    :param admit: may admit participants waiting in the lobby.
    :param end: may end the consult for everyone.
    :param record: may start and stop the recording.
    :param moderate: may mute or remove other participants.
    """

    join: bool = False
    lobby: bool = False
    publish: bool = False
    subscribe: bool = False
    admit: bool = False
    end: bool = False
    record: bool = False
    moderate: bool = False

    def as_dict(self) -> dict[str, bool]:
        """The grants as a JSON-ready mapping."""
        return asdict(self)


NO_GRANTS = ConsultGrants()


def grants_for(role: Role, *, is_host: bool, removed: bool, ended: bool) -> ConsultGrants:
    """Derive the grants of an invited participant.

    :param role: the participant's role in the consult.
    :param is_host: whether they host the consult.
    :param removed: whether a host removed them (a removed participant gets nothing).
    :param ended: whether the consult has ended (an ended consult grants nothing).
    """
    if removed or ended:
        return NO_GRANTS
    if is_host:
        return ConsultGrants(
            join=True,
            publish=True,
            subscribe=True,
            admit=True,
            end=True,
            record=True,
            moderate=True,
        )
    return ConsultGrants(join=True, lobby=role is Role.PATIENT, publish=True, subscribe=True)
