"""Safety checks of an e-prescription before it is signed: allergies and duplicate drugs.

Drug codes are ATC codes (or a formulary's codes with the same prefix structure), so an allergy
recorded against a class (``J01C``, penicillins) also matches every drug of that class
(``J01CA04``, amoxicillin).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Allergy:
    """A recorded allergy: the substance (code and name) the patient reacts to."""

    substance_code: str
    substance_name: str
    reaction: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveMedication:
    """A drug of another prescription of the patient that is signed and not rejected."""

    prescription_id: str
    drug_code: str
    drug_name: str


@dataclass(frozen=True, slots=True)
class SafetyFinding:
    """One reason not to sign as is.

    :param kind: ``allergy`` or ``duplicate``.
    :param item: the index of the prescription item concerned.
    :param drug_code: that item's drug code.
    :param message: what was found, for the doctor (never logged).
    :param related: the allergy's substance code, or the other prescription's id.
    """

    kind: str
    item: int
    drug_code: str
    message: str
    related: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _matches(drug_code: str, drug_name: str, allergy: Allergy) -> bool:
    code = drug_code.strip().upper()
    substance = allergy.substance_code.strip().upper()
    if code and substance and code.startswith(substance):
        return True
    name = allergy.substance_name.strip().casefold()
    return bool(name) and name in drug_name.casefold()


def check_prescription(
    items: Sequence[dict[str, Any]],
    allergies: Iterable[Allergy],
    active: Iterable[ActiveMedication] = (),
) -> list[SafetyFinding]:
    """Every allergy and duplicate-drug finding for the items of one prescription.

    :param items: the prescription's items (each with ``drug: {code, name}``).
    :param allergies: the patient's recorded allergies.
    :param active: drugs of the patient's other signed, not rejected prescriptions.
    """
    allergies = list(allergies)
    active = list(active)
    findings: list[SafetyFinding] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        drug = item.get("drug") or {}
        code = str(drug.get("code") or "").strip().upper()
        name = str(drug.get("name") or "")
        for allergy in allergies:
            if _matches(code, name, allergy):
                findings.append(
                    SafetyFinding(
                        "allergy",
                        index,
                        code,
                        f"{name}: the patient is allergic to {allergy.substance_name}",
                        allergy.substance_code,
                    )
                )
        if code in seen:
            findings.append(
                SafetyFinding(
                    "duplicate",
                    index,
                    code,
                    f"{name} is prescribed twice (items {seen[code] + 1} and {index + 1})",
                    str(seen[code]),
                )
            )
        else:
            seen[code] = index
        for other in active:
            if other.drug_code.strip().upper() == code:
                findings.append(
                    SafetyFinding(
                        "duplicate",
                        index,
                        code,
                        f"{name} is already prescribed to the patient",
                        other.prescription_id,
                    )
                )
    if findings:
        logger.info("prescription safety findings", extra={"findings": len(findings)})
    return findings
