"""The clinical services of one server process, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clinical.allergies import AllergyRegistry
from clinical.notes import NoteService
from clinical.outbox import Outbox, OutboxPolicy, OutboxWorker
from clinical.prescriptions import PrescriptionService
from clinical.record_store import FhirRecordStore, RecordStore, SqlRecordStore
from clinical.signing import DocumentSigner
from config.database import Database
from config.settings import Settings
from rooms.audit import AuditLog
from rooms.service import ConsultService

logger = logging.getLogger(__name__)


@dataclass
class ClinicalServices:
    """Notes, prescriptions, allergies, the signing key and the outbox with its worker."""

    notes: NoteService
    prescriptions: PrescriptionService
    allergies: AllergyRegistry
    signer: DocumentSigner
    outbox: Outbox
    worker: OutboxWorker
    audit: AuditLog


def record_store_from_settings(settings: Settings, database: Database) -> RecordStore:
    """The record store the settings choose: SQL tables, or a FHIR R4 server.

    :raises ValueError: for ``fhir`` without ``fhir_base_url``.
    """
    if settings.record_store == "fhir":
        if not settings.fhir_base_url:
            raise ValueError("TELECONSULT_RECORD_STORE=fhir needs TELECONSULT_FHIR_BASE_URL")
        return FhirRecordStore(settings.fhir_base_url, settings.fhir_timeout_seconds)
    return SqlRecordStore(database)


def build_clinical(
    settings: Settings, database: Database, consults: ConsultService
) -> ClinicalServices:
    """Build the clinical services; the worker starts with the application.

    :param settings: this deployment's settings.
    :param database: the shared database.
    :param consults: the consult service (for timeline entries).
    """
    audit = AuditLog(database)
    signer = DocumentSigner.from_file(settings.clinical_key_path)
    outbox = Outbox(database)
    allergies = AllergyRegistry(database, audit)
    worker = OutboxWorker(
        database,
        record_store_from_settings(settings, database),
        OutboxPolicy(
            max_attempts=settings.outbox_max_attempts,
            backoff_seconds=settings.outbox_backoff_seconds,
            lease_seconds=settings.outbox_lease_seconds,
            poll_seconds=settings.outbox_poll_seconds,
        ),
    )
    outbox.on_enqueue(worker.wake)
    logger.info(
        "clinical services ready",
        extra={"record_store": settings.record_store, "signing_key_id": signer.key_id},
    )
    return ClinicalServices(
        notes=NoteService(database, audit, signer, outbox, consults),
        prescriptions=PrescriptionService(database, audit, signer, outbox, allergies, consults),
        allergies=allergies,
        signer=signer,
        outbox=outbox,
        worker=worker,
        audit=audit,
    )
