"""Patients' recorded allergies: written by the hospital (its system, doctors, coordinators), read
by the prescription safety check."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, select

from clinical.access import audited
from clinical.models import PatientAllergy
from clinical.safety import Allergy
from config.database import Database
from rooms.audit import AuditLog
from rooms.errors import Forbidden, IdentityTokenRequired
from rooms.identity import Identity, Role
from rooms.models import utcnow

logger = logging.getLogger(__name__)

#: Who records a patient's allergies for their hospital.
RECORDING_ROLES = frozenset({Role.DOCTOR, Role.SERVICE, Role.COORDINATOR})
#: Who reads them (prescribing and dispensing staff, the hospital system).
READING_ROLES = frozenset(
    {Role.DOCTOR, Role.EXPERT, Role.PHARMACIST, Role.SERVICE, Role.COORDINATOR}
)


class AllergyRegistry:
    """The ``patient_allergies`` table, per hospital and patient.

    :param database: where allergies live.
    :param audit: the access audit log.
    :param clock: the current UTC time.
    """

    def __init__(
        self, database: Database, audit: AuditLog, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._database = database
        self._audit = audit
        self._clock = clock

    async def replace(
        self,
        caller: Identity,
        patient_sub: str,
        allergies: Sequence[Allergy],
        address: str | None = None,
    ) -> list[Allergy]:
        """Set the complete list of a patient's allergies at the caller's hospital.

        :raises Forbidden: for roles that do not record allergies.
        """
        async with audited(
            self._audit, caller, "update", "allergies", patient_sub, address
        ) as scope:
            scope.hospital_id = caller.hospital
            if caller.role not in RECORDING_ROLES or caller.is_join_link:
                raise Forbidden("Only the hospital's staff and system record allergies")
            async with self._database.transaction() as session:
                await session.execute(
                    delete(PatientAllergy).where(
                        PatientAllergy.hospital_id == caller.hospital,
                        PatientAllergy.patient_sub == patient_sub,
                    )
                )
                unique = {a.substance_code.strip().upper(): a for a in allergies}
                for code, allergy in unique.items():
                    session.add(
                        PatientAllergy(
                            hospital_id=caller.hospital,
                            patient_sub=patient_sub,
                            substance_code=code,
                            substance_name=allergy.substance_name,
                            reaction=allergy.reaction,
                            recorded_by=caller.sub,
                            recorded_at=self._clock(),
                        )
                    )
            scope.detail = {"count": len(unique)}
        logger.info("allergies recorded", extra={"count": len(unique)})
        return await self.of_patient(caller.hospital, patient_sub)

    async def read(
        self, caller: Identity, patient_sub: str, address: str | None = None
    ) -> list[Allergy]:
        """A patient's allergies, for the hospital's staff and for the patient."""
        async with audited(self._audit, caller, "view", "allergies", patient_sub, address) as scope:
            scope.hospital_id = caller.hospital
            if caller.is_join_link:
                raise IdentityTokenRequired("Allergies are read with your own identity token")
            own = caller.role is Role.PATIENT and caller.sub == patient_sub
            if not own and caller.role not in READING_ROLES:
                raise Forbidden("Not allowed to read this patient's allergies")
            return await self.of_patient(caller.hospital, patient_sub)

    async def of_patient(self, hospital_id: str, patient_sub: str) -> list[Allergy]:
        """The allergies recorded for a patient at a hospital (unchecked: for the safety check)."""
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(PatientAllergy)
                .where(
                    PatientAllergy.hospital_id == hospital_id,
                    PatientAllergy.patient_sub == patient_sub,
                )
                .order_by(PatientAllergy.substance_code)
            )
            return [Allergy(r.substance_code, r.substance_name, r.reaction) for r in rows]
