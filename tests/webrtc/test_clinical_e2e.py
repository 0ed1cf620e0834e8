"""In real Chromium: during a visit the doctor writes and signs a note and a prescription in the
consult page's side panel, a pharmacist approves it in their page, and the patient, come through
the hospital's patient portal, sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import expect

from tests.log_scan import register_secret
from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    DOCTOR_SUB,
    HOSPITAL,
    PATIENT_NAME,
    PATIENT_SUB,
    NewContext,
    admit_from_lobby,
    join,
    open_link,
    participant,
    schedule_visit,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(120)]

UI_TIMEOUT_MS = 20_000


async def test_doctor_signs_note_and_prescription_pharmacist_approves_patient_sees_it(
    server_factory: Callable[..., Awaitable[TeleconsultServer]], new_context: NewContext
) -> None:
    server = await server_factory()
    consult = await schedule_visit(server, server.token("coord-1", "coordinator", HOSPITAL))
    doctor = await open_link(new_context, participant(consult, DOCTOR_SUB)["join_url"])
    await join(doctor)
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")
    # The patient comes through the hospital's patient portal, with their own identity token: a
    # join link alone reads no clinical document.
    portal = server.token(PATIENT_SUB, "patient", HOSPITAL, PATIENT_NAME)
    patient = await open_link(new_context, f"{server.base_url}/join/{consult['id']}#token={portal}")
    await join(patient)
    await admit_from_lobby(doctor, patient, PATIENT_NAME)
    await expect(patient.locator("#patient-prescriptions-empty")).to_have_text(
        "No approved prescription yet."
    )

    # The note: typed in, saved as a draft on its own, then signed.
    panel = doctor.locator("#clinical-panel")
    # Clinical text: the whole run's logs are checked for it (tests/log_scan.py).
    register_secret("Headache for three days.", "Start amlodipine; review in two weeks.")
    await panel.get_by_label("Subjective").fill("Headache for three days.")
    await panel.get_by_label("Objective").fill("BP 162/98 mmHg.")
    await panel.get_by_label("Assessment").fill("Uncontrolled essential hypertension.")
    await panel.get_by_label("Plan").fill("Start amlodipine; review in two weeks.")
    await panel.get_by_label("ICD-10 code").fill("I10")
    await panel.get_by_label("Diagnosis", exact=True).fill("Essential hypertension")
    status = doctor.locator("#note-status")
    await expect(status).to_have_text("Draft saved", timeout=UI_TIMEOUT_MS)
    await panel.get_by_role("button", name="Sign", exact=True).click()
    await expect(status).to_contain_text("Signed", timeout=UI_TIMEOUT_MS)
    await expect(status).to_contain_text("Saved in the hospital record", timeout=UI_TIMEOUT_MS)
    await expect(panel.get_by_label("Plan")).to_have_attribute("readonly", "")

    # The prescription.
    await panel.get_by_label("Drug code").fill("C08CA01")
    await panel.get_by_label("Drug", exact=True).fill("Amlodipine")
    await panel.get_by_label("Strength").fill("5 mg")
    await panel.get_by_label("Dose", exact=True).fill("1")
    await panel.get_by_label("Dose unit").fill("tablet")
    await panel.get_by_label("Route").select_option("oral")
    await panel.get_by_label("Frequency").select_option("QD")
    await panel.get_by_label("Duration (days)").fill("14")
    await panel.get_by_label("Quantity").fill("14")
    await panel.get_by_label("Refills").fill("0")
    await panel.get_by_role("button", name="Sign prescription").click()
    rx_status = doctor.locator("#rx-status")
    await expect(rx_status).to_contain_text("Signed", timeout=UI_TIMEOUT_MS)

    # The pharmacist approves it from their queue.
    pharmacist_token = server.token("ph-zhao", "pharmacist", HOSPITAL, name="Zhao Min")
    pharmacy = await (await new_context()).new_page()
    await pharmacy.goto(f"{server.base_url}/pharmacy?token={pharmacist_token}")
    card = pharmacy.locator("li.pharmacy-item")
    await expect(card).to_contain_text("Li Hua, prescribed by Dr. Wang Fang")
    await expect(card).to_contain_text("Amlodipine 5 mg: 1 tablet, by mouth, once a day")
    assert "token=" not in pharmacy.url
    await card.get_by_role("button", name="Reject").click()
    await expect(card.get_by_label("Reason")).to_have_attribute("aria-invalid", "true")
    await card.get_by_role("button", name="Approve").click()
    await expect(pharmacy.locator("#pharmacy-empty")).to_be_visible(timeout=UI_TIMEOUT_MS)

    # The doctor sees the outcome; the patient sees the approved prescription.
    await expect(rx_status).to_contain_text("Approved by Zhao Min", timeout=UI_TIMEOUT_MS)
    prescriptions = patient.locator("#patient-prescriptions")
    await expect(prescriptions).to_contain_text(
        "Amlodipine 5 mg: 1 tablet, by mouth, once a day, 14 days", timeout=UI_TIMEOUT_MS
    )
    await expect(patient.locator("#patient-prescriptions-empty")).to_be_hidden()
