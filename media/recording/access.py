"""Who may see and review recordings: the quality team, and doctors their own consults."""

from __future__ import annotations

import logging

from rooms.identity import Identity, Role

from .errors import AdminRequired, RecordingForbidden, ReviewForbidden

logger = logging.getLogger(__name__)

#: Roles that review the recordings of their own hospital.
REVIEW_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})


def may_review(caller: Identity, hospital: str) -> bool:
    """
    True when `caller` is on the quality team (reviewer or admin) of `hospital`.

    Tokens restricted to one consult (join links) never review.

    :param caller: The verified caller.
    :param hospital: The recording's hospital.
    """
    return caller.consult_id is None and caller.role in REVIEW_ROLES and caller.hospital == hospital


def check_read(caller: Identity, hospital: str, consult_id: str, took_part: bool) -> None:
    """
    Allow reading a recording (manifest, files, timeline, review) or refuse.

    :param caller: The verified caller.
    :param hospital: The recording's hospital.
    :param consult_id: The recording's consult.
    :param took_part: Whether the caller is a doctor invited to that consult.
    :raises RecordingForbidden: for patients, experts, doctors of other consults, other hospitals.
    """
    if may_review(caller, hospital):
        return
    if caller.role is Role.DOCTOR and took_part and caller.consult_id in (None, consult_id):
        return
    raise RecordingForbidden("You may not see this recording")


def check_review(caller: Identity, hospital: str) -> None:
    """
    Allow scoring and commenting, or refuse.

    :param caller: The verified caller.
    :param hospital: The recording's hospital.
    :raises ReviewForbidden: unless the caller is on the hospital's quality team.
    """
    if not may_review(caller, hospital):
        raise ReviewForbidden("Only the hospital's quality reviewers may review recordings")


def check_admin(caller: Identity, hospital: str) -> None:
    """
    Allow a hospital administration task (audit log, policies, retention), or refuse.

    :param caller: The verified caller.
    :param hospital: The hospital concerned.
    :raises AdminRequired: unless the caller is an admin of that hospital.
    """
    if (
        caller.consult_id is not None
        or caller.role is not Role.ADMIN
        or caller.hospital != hospital
    ):
        raise AdminRequired("Only an administrator of this hospital may do this")
