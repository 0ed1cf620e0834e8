"""Unit tests of the clinical core: canonical form, signatures, safety checks, FHIR mapping."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from clinical import fhir
from clinical.safety import ActiveMedication, Allergy, check_prescription
from clinical.signing import DocumentSigner, canonical_bytes, load_public_key, verify
from signaling.api.notes import NoteIn
from signaling.api.prescriptions import PrescriptionItemIn
from tests.integration.clinical_helpers import NOTE, item

DOCUMENT = {"id": "n-1", "soap": {"plan": "Rest", "assessment": "头痛"}, "version": 1}


def test_canonical_form_is_sorted_compact_utf8_and_independent_of_key_order() -> None:
    reordered = {"version": 1, "soap": {"assessment": "头痛", "plan": "Rest"}, "id": "n-1"}
    expected = '{"id":"n-1","soap":{"assessment":"头痛","plan":"Rest"},"version":1}'
    assert canonical_bytes(DOCUMENT) == canonical_bytes(reordered) == expected.encode()


def test_canonical_form_refuses_floats() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"dose": 0.5})


def test_signature_verifies_and_a_tampered_copy_fails(tmp_path: Path) -> None:
    signer = DocumentSigner.from_file(tmp_path / "key.pem")
    signature = signer.sign(DOCUMENT)
    public_key = load_public_key(signer.public_key_pem())
    assert verify(DOCUMENT, signature.value, public_key)
    tampered = {**DOCUMENT, "soap": {**DOCUMENT["soap"], "plan": "Surgery"}}
    assert not verify(tampered, signature.value, public_key)
    assert not verify(DOCUMENT, "not base64!", public_key)
    other = DocumentSigner.from_file(tmp_path / "other.pem")
    assert not verify(DOCUMENT, signature.value, other.public_key)


def test_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "clinical.pem"
    first = DocumentSigner.from_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = DocumentSigner.from_file(path)
    assert again.key_id == first.key_id


def test_allergy_to_a_drug_class_matches_every_drug_of_the_class() -> None:
    penicillins = Allergy("J01C", "Penicillins")
    findings = check_prescription([item("J01CA04", "Amoxicillin"), item()], [penicillins])
    assert [(f.kind, f.item, f.related) for f in findings] == [("allergy", 0, "J01C")]


def test_allergy_by_substance_name_when_codes_differ() -> None:
    findings = check_prescription([item("X-123", "Aspirin 100 mg")], [Allergy("Z99", "aspirin")])
    assert [f.kind for f in findings] == ["allergy"]


def test_duplicates_within_the_prescription_and_with_active_ones() -> None:
    findings = check_prescription(
        [item(), item("C09AA02", "Enalapril"), item()],
        [],
        [ActiveMedication("rx-old", "C09AA02", "Enalapril")],
    )
    assert sorted((f.kind, f.item, f.related) for f in findings) == [
        ("duplicate", 1, "rx-old"),
        ("duplicate", 2, "0"),
    ]


def test_no_findings_for_a_safe_prescription() -> None:
    assert check_prescription([item()], [Allergy("J01C", "Penicillins")]) == []


def test_note_and_item_validation_name_each_bad_field() -> None:
    with pytest.raises(ValidationError) as caught:
        NoteIn.model_validate({"diagnoses": [{"code": "I10x", "text": "x"}], "extra": 1})
    assert {e["loc"] for e in caught.value.errors()} == {("diagnoses", 0, "code"), ("extra",)}
    with pytest.raises(ValidationError) as caught:
        PrescriptionItemIn.model_validate(item(dose="0", duration_days=0, route="orally"))
    assert {e["loc"][0] for e in caught.value.errors()} == {"dose", "duration_days", "route"}
    assert PrescriptionItemIn.model_validate(item(dose="0.50")).as_item()["dose"] == "0.5"


def _payload(kind: str) -> dict:
    consult = {
        "id": "c-1",
        "kind": "visit",
        "title": "Follow-up",
        "hospital": "h-east",
        "state": "live",
        "started_at": "2026-11-26T08:00:00+00:00",
    }
    people = {"patient": {"sub": "pt-li", "name": "Li Hua"}}
    doctor = {"sub": "dr-wang", "name": "Dr. Wang Fang"}
    if kind == "note":
        document = {
            "id": "n-1",
            "version": 1,
            "amends": None,
            "consult": consult,
            **people,
            "author": doctor,
            "signed_at": "2026-11-26T08:30:00+00:00",
            "soap": {k: NOTE[k] for k in ("subjective", "objective", "assessment", "plan")},
            "diagnoses": NOTE["diagnoses"],
        }
    else:
        document = {
            "id": "p-1",
            "consult": consult,
            **people,
            "prescriber": doctor,
            "signed_at": "2026-11-26T08:31:00+00:00",
            "items": [item(dose="0.5", frequency="PRN")],
            "safety": {"findings": [], "override_reason": None},
        }
    return {
        "document": document,
        "signature": {"algorithm": "Ed25519", "key_id": "abc", "value": "c2ln"},
        "consult": consult,
        "practitioner": doctor,
    }


def test_fhir_resources_of_a_note_validate_and_link_up() -> None:
    resources = fhir.resources_for("note", _payload("note"))
    encounter, condition, composition, provenance, bundle, reference = resources
    assert encounter["class"]["code"] == "VR" and encounter["status"] == "in-progress"
    assert composition["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    # The diagnosis is an ICD-10 Condition of the encounter, referenced from its section.
    assert condition["code"]["coding"] == [{"system": fhir.ICD10, "code": "I10"}]
    assert condition["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    diagnoses = composition["section"][-1]
    assert diagnoses["entry"] == [{"reference": f"Condition/{condition['id']}"}]
    assert composition["status"] == "final"
    assert provenance["target"] == [{"reference": "Composition/note-n-1"}]
    assert bundle["type"] == "document"
    assert reference["content"][0]["attachment"]["url"] == f"Bundle/{bundle['id']}"
    assert provenance["signature"][0]["data"] == "c2ln"


def test_fhir_resources_of_a_prescription_and_its_review() -> None:
    payload = _payload("prescription")
    _encounter, request, _provenance = fhir.resources_for("prescription", payload)
    assert request["status"] == "on-hold" and request["id"] == "rx-p-1-1"
    assert request["dosageInstruction"][0]["asNeededBoolean"] is True
    payload["review"] = {
        "outcome": "rejected",
        "reason": "Interaction",
        "pharmacist": {"sub": "ph", "name": "Zhao"},
    }
    (reviewed,) = fhir.resources_for("prescription_review", payload)
    assert reviewed["status"] == "cancelled" and reviewed["statusReason"]["text"] == "Interaction"


def test_an_invalid_resource_names_fields_not_values() -> None:
    with pytest.raises(fhir.InvalidResource) as caught:
        fhir.validated({"resourceType": "Encounter", "id": "x", "status": "secret-text"})
    assert "secret-text" not in str(caught.value)
