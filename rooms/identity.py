"""Who is asking: the identity a verified token carries, and the roles a hospital assigns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """A person's (or system's) role in the hospital, the ``role`` claim of a token."""

    PATIENT = "patient"
    DOCTOR = "doctor"
    EXPERT = "expert"
    COORDINATOR = "coordinator"
    PHARMACIST = "pharmacist"
    REVIEWER = "reviewer"
    ADMIN = "admin"
    SERVICE = "service"


#: Roles that may schedule consults by API.
SCHEDULING_ROLES = frozenset({Role.COORDINATOR, Role.DOCTOR, Role.SERVICE})
#: Roles that may be invited into a consult's call.
PARTICIPANT_ROLES = frozenset({Role.PATIENT, Role.DOCTOR, Role.EXPERT})
#: Roles that may host a consult.
HOST_ROLES = frozenset({Role.DOCTOR, Role.EXPERT})


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller.

    :param sub: the stable subject id given by the hospital's identity provider.
    :param name: the display name.
    :param role: the hospital role.
    :param hospital: the hospital the identity belongs to.
    :param consult_id: set for a join link: the one consult it opens; ``None`` for an identity
        token from the hospital's identity provider, which acts for its holder everywhere.
    :param expires_at: when the token expires (Unix time), if it says.
    """

    sub: str
    name: str
    role: Role
    hospital: str
    consult_id: str | None = None
    expires_at: float | None = field(default=None, compare=False)

    @property
    def is_join_link(self) -> bool:
        """True for a join link minted by this server for one participant of one consult."""
        return self.consult_id is not None

    def is_person(self, hospital: str, sub: str) -> bool:
        """True when this is the person ``(hospital, sub)``: a subject is unique per hospital."""
        return self.hospital == hospital and self.sub == sub


def administers(identity: Identity, hospital: str, region: str) -> bool:
    """True when ``identity`` may manage hospital ``hospital``'s record and integrations: an
    admin of that hospital, or an admin of the region (whose ``hospital`` claim is the region's
    code, ``TELECONSULT_REGION_CODE``). A join link administers nothing."""
    if identity.is_join_link or identity.role is not Role.ADMIN:
        return False
    return identity.hospital in (hospital, region)
