"""E-prescriptions: drafts, safety checks, signing, and the pharmacist's review."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clinical.access import (
    audited,
    consult_doctor,
    consult_patient,
    consult_snapshot,
    is_patient_of,
    load_consult,
    person,
    require_consult_doctor,
)
from clinical.allergies import AllergyRegistry
from clinical.errors import (
    AlreadyReviewed,
    DocumentSigned,
    NotSigned,
    PrescriptionNotFound,
    SafetyCheckFailed,
)
from clinical.models import Prescription
from clinical.safety import ActiveMedication, check_prescription
from clinical.signing import DocumentSigner
from config.database import Database
from outbox.queue import DeliveryStatus, Outbox
from rooms.audit import AuditLog
from rooms.errors import Forbidden, InvalidPayload
from rooms.identity import Identity, Role
from rooms.models import utcnow
from rooms.service import ConsultService

logger = logging.getLogger(__name__)

DRAFT, SIGNED, APPROVED, REJECTED = "draft", "signed", "approved", "rejected"
#: Fields every item needs before the prescription can be signed.
REQUIRED_ITEM_FIELDS = (
    "drug",
    "strength",
    "dose",
    "dose_unit",
    "route",
    "frequency",
    "duration_days",
    "quantity",
    "refills",
)


@dataclass(frozen=True, slots=True)
class PrescriptionView:
    """A prescription as the API shows it."""

    row: Prescription
    delivery: DeliveryStatus | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        row = self.row
        review = None
        if row.reviewed_at is not None:
            review = {
                "outcome": row.status,
                "reason": row.review_reason,
                "pharmacist": person(row.reviewer_sub or "", row.reviewer_name or ""),
                "reviewed_at": row.reviewed_at.isoformat(),
            }
        return {
            "id": row.id,
            "consult_id": row.consult_id,
            "hospital": row.hospital_id,
            "patient": person(row.patient_sub, row.patient_name),
            "prescriber": person(row.prescriber_sub, row.prescriber_name),
            "status": row.status,
            "items": list(row.items or []),
            "safety": {
                "findings": list(row.safety_findings or []),
                "override_reason": row.override_reason,
            },
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "signed_at": row.signed_at.isoformat() if row.signed_at else None,
            "signature": (
                {"algorithm": "Ed25519", "key_id": row.signing_key_id, "value": row.signature}
                if row.signature
                else None
            ),
            "signed_document": row.signed_document,
            "review": review,
            "delivery": self.delivery.as_dict() if self.delivery else None,
        }


def _check_complete(items: Sequence[dict[str, Any]]) -> None:
    errors = []
    if not items:
        errors.append({"field": "items", "message": "at least one item is required"})
    for index, item in enumerate(items):
        for name in REQUIRED_ITEM_FIELDS:
            if item.get(name) in (None, ""):
                errors.append({"field": f"items.{index}.{name}", "message": "required to sign"})
    if errors:
        raise InvalidPayload("The prescription is not complete", details=errors)


class PrescriptionService:
    """Writes, checks, signs, reviews and reads e-prescriptions; every access is audited.

    :param database: where prescriptions live.
    :param audit: the access audit log.
    :param signer: the server's document signing key.
    :param outbox: the queue to the record store.
    :param allergies: the patients' recorded allergies.
    :param consults: the consult service (timeline entries).
    :param clock: the current UTC time.
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        signer: DocumentSigner,
        outbox: Outbox,
        allergies: AllergyRegistry,
        consults: ConsultService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._audit = audit
        self._signer = signer
        self._outbox = outbox
        self._allergies = allergies
        self._consults = consults
        self._clock = clock

    async def create(
        self,
        caller: Identity,
        consult_id: str,
        items: Sequence[dict[str, Any]],
        address: str | None = None,
    ) -> PrescriptionView:
        """Start a draft prescription for a consult (its doctors only).

        :param items: the items as validated at the edge (decimals as strings).
        """
        async with audited(
            self._audit, caller, "create", "prescription", consult_id, address
        ) as scope:
            consult = await load_consult(self._database, consult_id)
            scope.about(consult.id, consult.hospital)
            require_consult_doctor(caller, consult)
            patient = consult_patient(consult)
            now = self._clock()
            row = Prescription(
                consult_id=consult.id,
                hospital_id=consult.hospital,
                patient_sub=patient.sub,
                patient_name=patient.name,
                prescriber_sub=caller.sub,
                prescriber_name=caller.name,
                status=DRAFT,
                items=list(items),
                safety_findings=[],
                created_at=now,
                updated_at=now,
            )
            async with self._database.transaction() as session:
                session.add(row)
            scope.resource_id = row.id
        return PrescriptionView(row)

    async def get(
        self, caller: Identity, prescription_id: str, address: str | None = None
    ) -> PrescriptionView:
        """A prescription: for the consult's doctors, its hospital's pharmacists once signed,
        and its patient once signed."""
        async with audited(
            self._audit, caller, "view", "prescription", prescription_id, address
        ) as scope:
            row = await self._row(prescription_id)
            scope.about(row.consult_id, row.hospital_id)
            await self._require_reader(caller, row)
        return await self._view(row)

    async def update(
        self,
        caller: Identity,
        prescription_id: str,
        items: Sequence[dict[str, Any]],
        address: str | None = None,
    ) -> PrescriptionView:
        """Replace a draft's items as the doctor types; a signed prescription cannot change."""
        async with audited(
            self._audit, caller, "update", "prescription", prescription_id, address
        ) as scope:
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, prescription_id, scope)
                row.items = list(items)
                row.updated_at = self._clock()
        return PrescriptionView(row)

    async def check(self, row: Prescription) -> list[dict[str, Any]]:
        """The safety findings of a prescription's items for its patient."""
        allergies = await self._allergies.of_patient(row.hospital_id, row.patient_sub)
        async with self._database.sessions() as session:
            others = await session.scalars(
                select(Prescription).where(
                    Prescription.hospital_id == row.hospital_id,
                    Prescription.patient_sub == row.patient_sub,
                    Prescription.status.in_([SIGNED, APPROVED]),
                    Prescription.id != row.id,
                )
            )
            active = [
                ActiveMedication(other.id, item["drug"]["code"], item["drug"]["name"])
                for other in others
                for item in other.items
            ]
        return [f.as_dict() for f in check_prescription(row.items, allergies, active)]

    async def sign(
        self,
        caller: Identity,
        prescription_id: str,
        override_reason: str | None = None,
        address: str | None = None,
    ) -> PrescriptionView:
        """Check and sign a draft, and queue it for the record store.

        :param override_reason: the doctor's reason to sign despite safety findings.
        :raises SafetyCheckFailed: with the findings, when there are some and no override.
        """
        async with audited(
            self._audit, caller, "sign", "prescription", prescription_id, address
        ) as scope:
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, prescription_id, scope)
                _check_complete(row.items)
                findings = await self.check(row)
                if findings and not (override_reason and override_reason.strip()):
                    scope.detail = {"findings": [f["kind"] for f in findings]}
                    raise SafetyCheckFailed(
                        "Safety checks found problems: change the prescription or override "
                        "with a reason",
                        details=findings,
                    )
                reason = override_reason.strip() if findings and override_reason else None
                consult = await load_consult(self._database, row.consult_id)
                now = self._clock()
                document = {
                    "type": "e-prescription",
                    "id": row.id,
                    "consult": consult_snapshot(consult),
                    "patient": person(row.patient_sub, row.patient_name),
                    "prescriber": person(row.prescriber_sub, row.prescriber_name),
                    "signer": {
                        "sub": caller.sub,
                        "name": caller.name,
                        "role": caller.role.value,
                        "hospital": caller.hospital,
                    },
                    "signed_at": now.isoformat(),
                    "items": list(row.items),
                    "safety": {"findings": findings, "override_reason": reason},
                }
                signature = self._signer.sign(document)
                row.status = SIGNED
                row.safety_findings = findings
                row.override_reason = reason
                row.signed_at = now
                row.updated_at = now
                row.signed_document = document
                row.signature = signature.value
                row.signing_key_id = signature.key_id
                self._outbox.enqueue(
                    session,
                    kind="prescription",
                    idempotency_key=f"prescription:{row.id}",
                    document_id=row.id,
                    consult_id=row.consult_id,
                    hospital_id=row.hospital_id,
                    payload=self._payload(row, document),
                )
                if reason:
                    scope.detail = {
                        "override": True,
                        "findings": [f["kind"] for f in findings],
                    }
        self._outbox.notify()
        await self._consults.note(
            row.consult_id, caller, "prescription_signed", {"prescription_id": row.id}
        )
        logger.info(
            "prescription signed",
            extra={"prescription_id": row.id, "override": reason is not None},
        )
        return await self._view(row)

    async def review(
        self,
        caller: Identity,
        prescription_id: str,
        approve: bool,
        reason: str | None,
        address: str | None = None,
    ) -> PrescriptionView:
        """A pharmacist of the prescription's hospital approves or rejects a signed prescription.

        :raises InvalidPayload: for a rejection without a reason.
        """
        async with audited(
            self._audit, caller, "review", "prescription", prescription_id, address
        ) as scope:
            async with self._database.transaction() as session:
                row = await session.get(Prescription, prescription_id)
                if row is None:
                    raise PrescriptionNotFound("No such prescription")
                scope.about(row.consult_id, row.hospital_id)
                if caller.role is not Role.PHARMACIST or caller.hospital != row.hospital_id:
                    if await self._may_read(caller, row):
                        raise Forbidden("Only a pharmacist of the hospital reviews prescriptions")
                    raise PrescriptionNotFound("No such prescription")
                if row.status == DRAFT:
                    raise NotSigned("Only a signed prescription is reviewed")
                if row.status != SIGNED:
                    raise AlreadyReviewed("This prescription has already been reviewed")
                text = (reason or "").strip() or None
                if not approve and text is None:
                    raise InvalidPayload(
                        "A rejection needs a reason",
                        details=[{"field": "reason", "message": "required to reject"}],
                    )
                now = self._clock()
                row.status = APPROVED if approve else REJECTED
                row.reviewer_sub = caller.sub
                row.reviewer_name = caller.name
                row.review_reason = text
                row.reviewed_at = now
                row.updated_at = now
                payload = self._payload(row, row.signed_document or {})
                payload["review"] = {
                    "outcome": row.status,
                    "reason": text,
                    "pharmacist": person(caller.sub, caller.name),
                    "reviewed_at": now.isoformat(),
                }
                self._outbox.enqueue(
                    session,
                    kind="prescription_review",
                    idempotency_key=f"prescription:{row.id}:review",
                    document_id=row.id,
                    consult_id=row.consult_id,
                    hospital_id=row.hospital_id,
                    payload=payload,
                )
                scope.detail = {"outcome": row.status}
        self._outbox.notify()
        await self._consults.note(
            row.consult_id, caller, f"prescription_{row.status}", {"prescription_id": row.id}
        )
        return await self._view(row)

    async def for_consult(self, caller: Identity, consult_id: str) -> list[PrescriptionView]:
        """The consult's prescriptions this caller may read (the caller audits the listing)."""
        async with self._database.sessions() as session:
            rows = list(
                await session.scalars(
                    select(Prescription)
                    .where(Prescription.consult_id == consult_id)
                    .order_by(Prescription.created_at)
                )
            )
        readable = [row for row in rows if await self._may_read(caller, row)]
        return await self._views(readable)

    async def queue(self, caller: Identity, address: str | None = None) -> list[PrescriptionView]:
        """Signed prescriptions of the pharmacist's hospital that wait for review, oldest first."""
        async with audited(
            self._audit, caller, "list", "pharmacy_queue", caller.hospital, address
        ) as scope:
            scope.hospital_id = caller.hospital
            if caller.role is not Role.PHARMACIST:
                raise Forbidden("Only pharmacists have a review queue")
            async with self._database.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(Prescription)
                        .where(
                            Prescription.hospital_id == caller.hospital,
                            Prescription.status == SIGNED,
                        )
                        .order_by(Prescription.signed_at)
                    )
                )
            scope.detail = {"count": len(rows)}
        return await self._views(rows)

    @staticmethod
    def _payload(row: Prescription, document: dict[str, Any]) -> dict[str, Any]:
        return {
            "document": document,
            "signature": {
                "algorithm": "Ed25519",
                "key_id": row.signing_key_id,
                "value": row.signature,
            },
            "consult": document["consult"],
            "practitioner": document["prescriber"],
        }

    async def _view(self, row: Prescription) -> PrescriptionView:
        return (await self._views([row]))[0]

    async def _views(self, rows: list[Prescription]) -> list[PrescriptionView]:
        statuses = await self._outbox.statuses(row.id for row in rows)
        return [PrescriptionView(row, statuses.get(row.id)) for row in rows]

    async def _row(self, prescription_id: str) -> Prescription:
        async with self._database.sessions() as session:
            row = await session.get(Prescription, prescription_id)
        if row is None:
            raise PrescriptionNotFound("No such prescription")
        return row

    async def _may_read(self, caller: Identity, row: Prescription) -> bool:
        consult = await load_consult(self._database, row.consult_id)
        if consult_doctor(caller, consult) is not None:
            return True
        if row.status == DRAFT:
            return False
        if caller.role is Role.PHARMACIST and caller.hospital == row.hospital_id:
            return True
        return is_patient_of(caller, row.consult_id, row.patient_sub, row.hospital_id)

    async def _require_reader(self, caller: Identity, row: Prescription) -> None:
        if not await self._may_read(caller, row):
            raise PrescriptionNotFound("No such prescription")

    async def _owned_draft(
        self, session: Any, caller: Identity, prescription_id: str, scope: Any
    ) -> Prescription:
        row = await session.get(Prescription, prescription_id)
        if row is None:
            raise PrescriptionNotFound("No such prescription")
        scope.about(row.consult_id, row.hospital_id)
        consult = await load_consult(self._database, row.consult_id)
        require_consult_doctor(caller, consult)
        if row.prescriber_sub != caller.sub:
            raise Forbidden("Only the prescriber edits and signs a prescription")
        if row.status != DRAFT:
            raise DocumentSigned("A signed prescription cannot change")
        return row
