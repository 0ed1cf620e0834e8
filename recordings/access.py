"""Who may see and review recordings (the quality team, and doctors their own consults), audited.

Every request about a recording is authorised here and written to the access audit log, refusals
too (outcome ``refused:<code>``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from rooms.audit import AuditLog, AuditRecord
from rooms.errors import DomainError
from rooms.identity import Identity, Role
from rooms.service import ConsultService

from .catalogue import RecordingCatalogue, RecordingFilter, RecordingView
from .errors import AdminRequired, RecordingDeleted, RecordingForbidden, ReviewForbidden

logger = logging.getLogger(__name__)

#: Roles that review the recordings of their own hospital.
REVIEW_ROLES = frozenset({Role.REVIEWER, Role.ADMIN})


def system_identity(hospital: str, what: str) -> Identity:
    """
    The server itself, acting on a hospital's recordings (recovery, retention).

    :param hospital: The hospital.
    :param what: What acts, e.g. ``retention``.
    """
    return Identity(f"teleconsult:{what}", f"teleconsult {what}", Role.SERVICE, hospital)


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


class RecordingAccess:
    """
    Authorises requests about recordings and audits them, allowed or refused.

    :param catalogue: The recordings.
    :param consults: Who was invited to which consult.
    :param audit: The access audit log.
    """

    def __init__(
        self, catalogue: RecordingCatalogue, consults: ConsultService, audit: AuditLog
    ) -> None:
        self._catalogue = catalogue
        self._consults = consults
        self._audit = audit

    async def audit(
        self,
        who: Identity,
        action: str,
        recording_id: str,
        recording: RecordingView | None,
        *,
        error: DomainError | None = None,
        client_address: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """
        Write one access to a recording (or to the list, ``recording_id`` ``*``) to the audit log.

        :param who: Who asked.
        :param action: What they did (``list``, ``view``, ``stream``, ``download``, ``score``, …).
        :param recording_id: The recording asked for.
        :param recording: Its catalogue entry, when it was found.
        :param error: The refusal, when refused.
        :param client_address: Where the request came from.
        :param detail: Extra audit detail.
        """
        await self._audit.record(
            who,
            AuditRecord(
                action,
                "recording",
                recording_id,
                recording.consult_id if recording else None,
                recording.hospital if recording else None,
                _outcome(error),
            ),
            client_address=client_address,
            detail=detail or {},
        )

    async def authorise(
        self,
        who: Identity,
        recording_id: str,
        action: str,
        *,
        review: bool = False,
        client_address: str | None = None,
        detail: dict[str, Any] | None = None,
        check: Callable[[RecordingView], Awaitable[object]] | None = None,
    ) -> RecordingView:
        """
        The recording `who` asks for, once authorised and audited.

        :param who: The caller (the bearer, or the viewer of a playback link).
        :param recording_id: The recording.
        :param action: What the caller does (``view``, ``stream``, ``download``, ``score``, …).
        :param review: True for scoring and commenting (the quality team only).
        :param client_address: Where the request came from.
        :param detail: Extra audit detail.
        :param check: A last check of the request once the caller may read the recording
            (that the file asked for exists); its refusals are audited too.
        :raises DomainError: refused (and audited as refused).
        """
        recording: RecordingView | None = None
        try:
            recording = await self._catalogue.get(recording_id)
            await self._check_read(who, recording)
            if review:
                check_review(who, recording.hospital)
            if recording.status == "deleted":
                raise RecordingDeleted("This recording was deleted under the retention policy")
            if check is not None:
                await check(recording)
        except DomainError as error:
            logger.warning("recording access refused", extra={"code": error.code, "action": action})
            await self.audit(
                who,
                action,
                recording_id,
                recording,
                error=error,
                client_address=client_address,
                detail=detail,
            )
            raise
        await self.audit(
            who, action, recording_id, recording, client_address=client_address, detail=detail
        )
        return recording

    async def _check_read(self, who: Identity, recording: RecordingView) -> None:
        """Readers: the hospital's quality team, and doctors invited to the consult."""
        took_part = False
        if who.role is Role.DOCTOR:
            invitation = await self._consults.invitation(recording.consult_id, who)
            took_part = invitation is not None and invitation.role is Role.DOCTOR
        check_read(who, recording.hospital, recording.consult_id, took_part)

    async def search(
        self, who: Identity, where: RecordingFilter, client_address: str | None = None
    ) -> list[RecordingView]:
        """
        The recordings matching `where` that `who` may see (audited): a quality team its own
        hospital's, a doctor those of the consults they were invited to.

        :param who: The caller.
        :param where: The caller's filters.
        :param client_address: Where the request came from.
        :raises RecordingForbidden: for other roles, and for another hospital (audited).
        """
        try:
            if who.consult_id is None and who.role in REVIEW_ROLES:
                if where.hospital not in (None, who.hospital):
                    raise RecordingForbidden("You may only see your own hospital's recordings")
                where = replace(where, hospital=who.hospital)
            elif who.consult_id is None and who.role is Role.DOCTOR:
                where = replace(where, consult_ids=self._consults.invited_to(who, Role.DOCTOR))
            else:
                raise RecordingForbidden("You may not see recordings")
        except DomainError as error:
            await self.audit(who, "list", "*", None, error=error, client_address=client_address)
            raise
        found = await self._catalogue.search(where)
        await self.audit(
            who, "list", "*", None, client_address=client_address, detail={"count": len(found)}
        )
        return found

    async def check_admin(
        self, who: Identity, hospital: str, action: str, client_address: str | None = None
    ) -> None:
        """
        Allow a hospital administration task, or refuse and audit the refusal.

        :param who: The caller.
        :param hospital: The hospital concerned.
        :param action: The task (``view_audit``, ``view_policy``, ``set_policy``, …).
        :param client_address: Where the request came from.
        :raises AdminRequired: unless the caller is an admin of that hospital.
        """
        try:
            check_admin(who, hospital)
        except DomainError as error:
            await self.audit_admin(
                who, hospital, action, error=error, client_address=client_address
            )
            raise

    async def audit_admin(
        self,
        who: Identity,
        hospital: str,
        action: str,
        *,
        error: DomainError | None = None,
        client_address: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """
        Write one administration task on a hospital's recordings to the audit log.

        :param who: Who did it.
        :param hospital: The hospital.
        :param action: The task.
        :param error: The refusal, when refused.
        :param client_address: Where the request came from.
        :param detail: Extra audit detail (a new policy).
        """
        await self._audit.record(
            who,
            AuditRecord(action, "hospital", hospital, None, hospital, _outcome(error)),
            client_address=client_address,
            detail=detail,
        )


def _outcome(error: DomainError | None) -> str:
    return "allowed" if error is None else f"refused:{error.code}"
