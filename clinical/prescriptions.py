"""E-prescriptions: drug items, safety checks before signing, and the pharmacist's review."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from clinical.access import AuditScope, audited, load_consult, person
from clinical.allergies import AllergyRegistry
from clinical.documents import (
    DRAFT,
    SIGNED,
    DocumentContext,
    DocumentView,
    SignedDocuments,
    record_of,
)
from clinical.errors import AlreadyReviewed, NotSigned, PrescriptionNotFound, SafetyCheckFailed
from clinical.models import Prescription
from clinical.safety import ActiveMedication, check_prescription
from rooms.errors import Forbidden, IdentityTokenRequired, InvalidPayload
from rooms.identity import Identity, Role

APPROVED, REJECTED = "approved", "rejected"
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
class PrescriptionView(DocumentView[Prescription]):
    """A prescription as the API shows it."""

    def own(self) -> dict[str, Any]:
        """The items, the safety findings and override, and the pharmacist's review."""
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
            "items": list(row.items or []),
            "safety": {
                "findings": list(row.safety_findings or []),
                "override_reason": row.override_reason,
            },
            "review": review,
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


class PrescriptionService(SignedDocuments[Prescription, PrescriptionView]):
    """Writes, checks, signs, reviews and reads e-prescriptions; every access is audited.

    :param context: what every signed document works with.
    :param allergies: the patients' recorded allergies.
    """

    model = Prescription
    kind = "prescription"
    document_type = "e-prescription"
    not_found = PrescriptionNotFound
    only_author = "Only the prescriber edits and signs a prescription"
    immutable = "A signed prescription cannot change"
    order = (Prescription.created_at,)

    def __init__(self, context: DocumentContext, allergies: AllergyRegistry) -> None:
        super().__init__(context)
        self._allergies = allergies

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
        row = Prescription(items=list(items), safety_findings=[])
        return PrescriptionView(await self._create(caller, consult_id, row, address))

    async def update(
        self,
        caller: Identity,
        prescription_id: str,
        items: Sequence[dict[str, Any]],
        address: str | None = None,
    ) -> PrescriptionView:
        """Replace a draft's items as the doctor types; a signed prescription cannot change."""

        def replace_items(row: Prescription) -> None:
            row.items = list(items)

        return PrescriptionView(await self._update(caller, prescription_id, replace_items, address))

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

        async def checked_items(row: Prescription, scope: AuditScope) -> dict[str, Any]:
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
            row.safety_findings = findings
            row.override_reason = reason
            if reason:
                scope.detail = {"override": True, "findings": [f["kind"] for f in findings]}
            return {
                "items": list(row.items),
                "safety": {"findings": findings, "override_reason": reason},
            }

        row = await self._sign(caller, prescription_id, checked_items, address)
        return (await self._views([row]))[0]

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
            self._audit, caller, "review", self.kind, prescription_id, address
        ) as scope:
            async with self._database.transaction() as session:
                row = await session.get(Prescription, prescription_id)
                if row is None:
                    raise self._not_found()
                scope.about(row.consult_id, row.hospital_id)
                if caller.is_join_link:
                    raise IdentityTokenRequired("A review needs the pharmacist's identity token")
                if caller.role is not Role.PHARMACIST or caller.hospital != row.hospital_id:
                    consult = await load_consult(self._database, row.consult_id)
                    if self._may_read(caller, consult, row):
                        raise Forbidden("Only a pharmacist of the hospital reviews prescriptions")
                    raise self._not_found()
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
                payload = record_of(row)
                payload["review"] = {
                    "outcome": row.status,
                    "reason": text,
                    "pharmacist": person(caller.sub, caller.name),
                    "reviewed_at": now.isoformat(),
                }
                self._enqueue(
                    session, row, "prescription_review", f"prescription:{row.id}:review", payload
                )
                await self._emit(session, row, "reviewed", {"reviewed_at": now.isoformat()})
                scope.detail = {"outcome": row.status}
        self._outbox.notify()
        await self._consults.note(
            row.consult_id, caller, f"prescription_{row.status}", {"prescription_id": row.id}
        )
        await self._changed(row, "reviewed")
        return (await self._views([row]))[0]

    async def queue(self, caller: Identity, address: str | None = None) -> list[PrescriptionView]:
        """Signed prescriptions of the pharmacist's hospital that wait for review, oldest first."""
        async with audited(
            self._audit, caller, "list", "pharmacy_queue", caller.hospital, address
        ) as scope:
            scope.hospital_id = caller.hospital
            if caller.role is not Role.PHARMACIST or caller.is_join_link:
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

    async def _views(self, rows: list[Prescription]) -> list[PrescriptionView]:
        statuses = await self._outbox.statuses(row.id for row in rows)
        return [PrescriptionView(row, statuses.get(row.id)) for row in rows]

    def _reads_signed(self, caller: Identity, row: Prescription) -> bool:
        """Pharmacists of its hospital read a signed prescription, and so does its patient."""
        if caller.role is Role.PHARMACIST and caller.hospital == row.hospital_id:
            return True
        return super()._reads_signed(caller, row)
