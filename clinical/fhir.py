"""HL7 FHIR R4 resources of signed clinical documents, validated with ``fhir.resources`` (R4B).

Every resource has a deterministic id derived from our document ids, so writing it with
``PUT [base]/[type]/[id]`` (update-as-create) is idempotent: a retried delivery updates the
same resource instead of creating a second one.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

logger = logging.getLogger(__name__)

SYSTEM = "urn:teleconsult"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

MODELS: dict[str, type[Resource]] = {
    "Bundle": Bundle,
    "DocumentReference": DocumentReference,
    "Encounter": Encounter,
    "Composition": Composition,
    "Condition": Condition,
    "MedicationRequest": MedicationRequest,
    "Provenance": Provenance,
}

#: SOAP sections and the LOINC codes of their section kinds.
SECTIONS = (
    ("subjective", "Subjective", "61150-9"),
    ("objective", "Objective", "61149-1"),
    ("assessment", "Assessment", "51848-0"),
    ("plan", "Plan", "18776-5"),
)

#: Routes of administration and their SNOMED CT codes.
ROUTES = {
    "oral": ("26643006", "Oral route"),
    "sublingual": ("37839007", "Sublingual route"),
    "topical": ("6064005", "Topical route"),
    "inhaled": ("447694001", "Respiratory tract route"),
    "intravenous": ("47625008", "Intravenous route"),
    "intramuscular": ("78421000", "Intramuscular route"),
    "subcutaneous": ("34206005", "Subcutaneous route"),
    "rectal": ("37161004", "Rectal route"),
    "ophthalmic": ("54485002", "Ophthalmic route"),
    "nasal": ("46713006", "Nasal route"),
    "transdermal": ("45890007", "Transdermal route"),
}

#: Frequencies as FHIR Timing.repeat (times per period); PRN is "as needed".
FREQUENCIES: dict[str, dict[str, Any]] = {
    "QD": {"frequency": 1, "period": 1, "periodUnit": "d"},
    "BID": {"frequency": 2, "period": 1, "periodUnit": "d"},
    "TID": {"frequency": 3, "period": 1, "periodUnit": "d"},
    "QID": {"frequency": 4, "period": 1, "periodUnit": "d"},
    "Q4H": {"frequency": 1, "period": 4, "periodUnit": "h"},
    "Q6H": {"frequency": 1, "period": 6, "periodUnit": "h"},
    "Q8H": {"frequency": 1, "period": 8, "periodUnit": "h"},
    "Q12H": {"frequency": 1, "period": 12, "periodUnit": "h"},
    "QHS": {"frequency": 1, "period": 1, "periodUnit": "d", "when": ["HS"]},
    "QW": {"frequency": 1, "period": 1, "periodUnit": "wk"},
    "PRN": {},
}

#: MedicationRequest.status for each state of our prescription.
PRESCRIPTION_STATUS = {"signed": "on-hold", "approved": "active", "rejected": "cancelled"}


class InvalidResource(Exception):
    """A resource we built does not validate; names the fields, never their (clinical) values."""


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate ``resource`` with its fhir.resources R4B model; the model's JSON form.

    :raises InvalidResource: naming the fields that failed.
    """
    model = MODELS[resource["resourceType"]]
    try:
        parsed = model.model_validate(resource)
    except ValidationError as exc:
        fields = ", ".join(
            ".".join(str(p) for p in error["loc"]) for error in exc.errors(include_input=False)
        )
        kind = resource["resourceType"]
        raise InvalidResource(f"{kind} is not valid FHIR R4: {fields}") from None
    return parsed.model_dump(mode="json", exclude_none=True, by_alias=True)


def _person(kind: str, hospital: str, person: dict[str, Any]) -> dict[str, Any]:
    return {
        "identifier": {"system": f"{SYSTEM}:{hospital}:{kind}", "value": person["sub"]},
        "display": person["name"],
    }


def encounter_id(consult_id: str) -> str:
    """The Encounter id of a consult."""
    return f"enc-{consult_id}"


def encounter(payload: dict[str, Any]) -> dict[str, Any]:
    """The Encounter (class VR, a virtual visit) of the consult a document belongs to."""
    consult = payload["consult"]
    document = payload["document"]
    hospital = consult["hospital"]
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": encounter_id(consult["id"]),
        "identifier": [{"system": f"{SYSTEM}:consult", "value": consult["id"]}],
        "status": "finished" if consult["state"] == "ended" else "in-progress",
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "type": [{"text": consult["kind"]}],
        "subject": _person("patient", hospital, document["patient"]),
        "participant": [{"individual": _person("practitioner", hospital, payload["practitioner"])}],
        "serviceProvider": {"identifier": {"system": f"{SYSTEM}:hospital", "value": hospital}},
    }
    if consult.get("started_at"):
        resource["period"] = {"start": consult["started_at"]}
    return validated(resource)


def _narrative(text: str) -> dict[str, str]:
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line)
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{paragraphs or "<p></p>"}</div>',
    }


def condition_id(note_id: str, index: int) -> str:
    """The Condition id of one diagnosis of a note."""
    return f"cond-{note_id}-{index + 1}"


def conditions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One Condition (an encounter diagnosis, ICD-10) per diagnosis of a signed note."""
    document = payload["document"]
    hospital = document["consult"]["hospital"]
    return [
        validated(
            {
                "resourceType": "Condition",
                "id": condition_id(document["id"], index),
                "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
                "verificationStatus": {
                    "coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]
                },
                "category": [
                    {"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
                ],
                "code": {
                    "coding": [{"system": ICD10, "code": diagnosis["code"]}],
                    "text": diagnosis["text"],
                },
                "subject": _person("patient", hospital, document["patient"]),
                "encounter": {"reference": f"Encounter/{encounter_id(document['consult']['id'])}"},
                "recordedDate": document["signed_at"],
                "recorder": _person("practitioner", hospital, document["author"]),
            }
        )
        for index, diagnosis in enumerate(document["diagnoses"])
    ]


def composition(payload: dict[str, Any], medication_requests: Sequence[str] = ()) -> dict[str, Any]:
    """The Composition (LOINC 11488-4, consult note) of a signed note: SOAP and diagnoses.

    The diagnoses section references the note's :func:`conditions`.

    :param medication_requests: ids of MedicationRequests a prescriptions section references.
    """
    document = payload["document"]
    hospital = document["consult"]["hospital"]
    author = _person("practitioner", hospital, document["author"])
    sections: list[dict[str, Any]] = [
        {
            "title": title,
            "code": {"coding": [{"system": LOINC, "code": code, "display": title}]},
            "text": _narrative(document["soap"][key]),
        }
        for key, title, code in SECTIONS
        if document["soap"][key].strip()
    ]
    diagnoses = document["diagnoses"]
    if diagnoses:
        lines = "\n".join(f"{d['code']} {d['text']}" for d in diagnoses)
        sections.append(
            {
                "title": "Diagnoses (ICD-10)",
                "code": {"coding": [{"system": LOINC, "code": "29548-5", "display": "Diagnosis"}]},
                "text": _narrative(lines),
                "entry": [
                    {"reference": f"Condition/{condition_id(document['id'], index)}"}
                    for index in range(len(diagnoses))
                ],
            }
        )
    if medication_requests:
        sections.append(
            {
                "title": "Prescriptions",
                "code": {
                    "coding": [{"system": LOINC, "code": "10160-0", "display": "Medication use"}]
                },
                "entry": [
                    {"reference": f"MedicationRequest/{request_id}"}
                    for request_id in medication_requests
                ],
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Composition",
        "id": f"note-{document['id']}",
        "identifier": {"system": f"{SYSTEM}:note", "value": document["id"]},
        "status": "amended" if document["amends"] else "final",
        "type": {"coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"}]},
        "subject": _person("patient", hospital, document["patient"]),
        "encounter": {"reference": f"Encounter/{encounter_id(document['consult']['id'])}"},
        "date": document["signed_at"],
        "author": [author],
        "title": f"Consultation note v{document['version']}",
        "attester": [{"mode": "legal", "time": document["signed_at"], "party": author}],
        "section": sections,
    }
    if document["amends"]:
        resource["relatesTo"] = [
            {
                "code": "replaces",
                "targetReference": {"reference": f"Composition/note-{document['amends']}"},
            }
        ]
    return validated(resource)


def medication_request_id(prescription_id: str, index: int) -> str:
    """The MedicationRequest id of one item of a prescription."""
    return f"rx-{prescription_id}-{index + 1}"


def _dosage(item: dict[str, Any]) -> dict[str, Any]:
    route_code, route_name = ROUTES[item["route"]]
    repeat = dict(FREQUENCIES[item["frequency"]])
    repeat["boundsDuration"] = {
        "value": item["duration_days"],
        "unit": "d",
        "system": UCUM,
        "code": "d",
    }
    dosage: dict[str, Any] = {
        "text": (
            f"{item['dose']} {item['dose_unit']} {item['route']} {item['frequency']} "
            f"for {item['duration_days']} days"
        ),
        "timing": {"repeat": repeat, "code": {"text": item["frequency"]}},
        "route": {"coding": [{"system": SNOMED, "code": route_code, "display": route_name}]},
        "doseAndRate": [{"doseQuantity": {"value": item["dose"], "unit": item["dose_unit"]}}],
    }
    if item["frequency"] == "PRN":
        dosage["asNeededBoolean"] = True
    if item.get("instructions"):
        dosage["patientInstruction"] = item["instructions"]
    return dosage


def medication_requests(payload: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """One MedicationRequest per item of a signed prescription, in the given review state.

    :param status: ``signed``, ``approved`` or ``rejected``.
    """
    document = payload["document"]
    hospital = document["consult"]["hospital"]
    review = payload.get("review")
    resources = []
    for index, item in enumerate(document["items"]):
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": medication_request_id(document["id"], index),
            "identifier": [
                {"system": f"{SYSTEM}:prescription-item", "value": f"{document['id']}/{index + 1}"}
            ],
            "groupIdentifier": {"system": f"{SYSTEM}:prescription", "value": document["id"]},
            "status": PRESCRIPTION_STATUS[status],
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [
                    {"system": ATC, "code": item["drug"]["code"], "display": item["drug"]["name"]}
                ],
                "text": f"{item['drug']['name']} {item['strength']}",
            },
            "subject": _person("patient", hospital, document["patient"]),
            "encounter": {"reference": f"Encounter/{encounter_id(document['consult']['id'])}"},
            "authoredOn": document["signed_at"],
            "requester": _person("practitioner", hospital, document["prescriber"]),
            "dosageInstruction": [_dosage(item)],
            "dispenseRequest": {
                "quantity": {"value": item["quantity"], "unit": item["dose_unit"]},
                "numberOfRepeatsAllowed": item["refills"],
                "expectedSupplyDuration": {
                    "value": item["duration_days"],
                    "unit": "d",
                    "system": UCUM,
                    "code": "d",
                },
            },
        }
        if status == "signed":
            resource["statusReason"] = {"text": "awaiting pharmacist review"}
        elif status == "rejected" and review:
            resource["statusReason"] = {"text": review["reason"]}
        if document["safety"]["override_reason"]:
            resource["note"] = [
                {"text": f"Safety override: {document['safety']['override_reason']}"}
            ]
        if review:
            resource["performer"] = _person("practitioner", hospital, review["pharmacist"])
        resources.append(validated(resource))
    return resources


def provenance(
    resource_id: str, targets: list[str], payload: dict[str, Any], signer: dict[str, Any]
) -> dict[str, Any]:
    """The Provenance carrying the Ed25519 signature of a signed document over its targets.

    :param targets: ``Type/id`` references of the resources the document became.
    :param signer: who signed (``sub``, ``name``).
    """
    document = payload["document"]
    hospital = document["consult"]["hospital"]
    who = _person("practitioner", hospital, signer)
    signature = payload["signature"]
    resource = {
        "resourceType": "Provenance",
        "id": resource_id,
        "target": [{"reference": target} for target in targets],
        "recorded": document["signed_at"],
        "policy": [f"{SYSTEM}:signature:{signature['algorithm']}:{signature['key_id']}"],
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": (
                                "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
                            ),
                            "code": "author",
                        }
                    ]
                },
                "who": who,
            }
        ],
        "signature": [
            {
                "type": [
                    {
                        "system": SIGNATURE_TYPE,
                        "code": "1.2.840.10065.1.12.1.1",
                        "display": "Author's Signature",
                    }
                ],
                "when": document["signed_at"],
                "who": who,
                "targetFormat": "application/json",
                "sigFormat": "application/octet-stream",
                "data": signature["value"],
            }
        ],
    }
    return validated(resource)


def resources_for(kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource one outbox delivery writes, Encounter first, Provenance last.

    A note's Conditions come before the Composition that references them; its FHIR document
    (:func:`document_bundle`, with the prescriptions signed before it) and the
    DocumentReference that indexes it come last.
    """
    document = payload["document"]
    if kind == "note":
        note = composition(payload)
        bundle = document_bundle(
            payload, [(rx, status) for rx, status in payload.get("prescriptions", [])]
        )
        return [
            encounter(payload),
            *conditions(payload),
            note,
            provenance(
                f"prov-note-{document['id']}",
                [f"Composition/{note['id']}"],
                payload,
                document["author"],
            ),
            bundle,
            document_reference(payload, bundle),
        ]
    if kind == "prescription":
        requests = medication_requests(payload, "signed")
        return [
            encounter(payload),
            *requests,
            provenance(
                f"prov-rx-{document['id']}",
                [f"MedicationRequest/{r['id']}" for r in requests],
                payload,
                document["prescriber"],
            ),
        ]
    if kind == "prescription_review":
        return medication_requests(payload, payload["review"]["outcome"])
    raise ValueError(f"unknown outbox kind {kind!r}")


def full_url(reference: str) -> str:
    """The ``urn:uuid`` fullUrl, in a document Bundle, of the resource ``Type/id``."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{SYSTEM}:{reference}')}"


def _inside_bundle(value: Any) -> Any:
    """``value`` with every literal reference turned into the fullUrl of its Bundle entry."""
    if isinstance(value, dict):
        return {
            key: full_url(item) if key == "reference" else _inside_bundle(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_inside_bundle(item) for item in value]
    return value


def document_bundle(
    note: dict[str, Any], prescriptions: Sequence[tuple[dict[str, Any], str]]
) -> dict[str, Any]:
    """The FHIR document of a signed note with the consult's signed prescriptions.

    A ``Bundle`` of type ``document``: the Composition first, then every resource it references
    (Encounter, Conditions, MedicationRequests), each under a ``urn:uuid`` fullUrl that its
    references name. People and the hospital are referenced by identifier, as in the record.

    :param note: the note's record payload.
    :param prescriptions: each prescription's record payload and its state
        (``signed``, ``approved`` or ``rejected``).
    """
    requests = [
        request
        for payload, status in prescriptions
        for request in medication_requests(payload, status)
    ]
    resources = [
        composition(note, [request["id"] for request in requests]),
        encounter(note),
        *conditions(note),
        *requests,
    ]
    document = note["document"]
    bundle = {
        "resourceType": "Bundle",
        "id": f"doc-{document['id']}",
        "identifier": {"system": f"{SYSTEM}:document", "value": document["id"]},
        "type": "document",
        "timestamp": document["signed_at"],
        "entry": [
            {
                "fullUrl": full_url(f"{resource['resourceType']}/{resource['id']}"),
                "resource": _inside_bundle(resource),
            }
            for resource in resources
        ],
    }
    return validated(bundle)


def document_reference(note: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    """The DocumentReference by which the regional platform indexes a note's document Bundle."""
    document = note["document"]
    hospital = document["consult"]["hospital"]
    resource = {
        "resourceType": "DocumentReference",
        "id": f"docref-{document['id']}",
        "masterIdentifier": {"system": f"{SYSTEM}:document", "value": document["id"]},
        "status": "current",
        "docStatus": "amended" if document["amends"] else "final",
        "type": {"coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"}]},
        "subject": _person("patient", hospital, document["patient"]),
        "date": document["signed_at"],
        "author": [_person("practitioner", hospital, document["author"])],
        "custodian": {"identifier": {"system": f"{SYSTEM}:hospital", "value": hospital}},
        "content": [
            {
                "attachment": {
                    "contentType": "application/fhir+json",
                    "url": f"Bundle/{bundle['id']}",
                    "title": f"Consultation note v{document['version']}",
                }
            }
        ],
        "context": {
            "encounter": [{"reference": f"Encounter/{encounter_id(document['consult']['id'])}"}]
        },
    }
    return validated(resource)
