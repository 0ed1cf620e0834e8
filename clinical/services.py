"""The clinical services of one server process, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clinical.allergies import AllergyRegistry
from clinical.changes import ChangeFeed, DocumentChange
from clinical.documents import DocumentContext
from clinical.fhir_auth import BearerSpec, SmartSpec
from clinical.notes import NoteService
from clinical.prescriptions import PrescriptionService
from clinical.record_store import (
    RECORD_KINDS,
    FhirRecordStore,
    FhirStoreSpec,
    RecordStore,
    RecordStores,
    SqlRecordStore,
    SqlStoreSpec,
    StoreLookup,
    StoreSpec,
)
from clinical.signing import DocumentSigner
from config.database import Database
from config.settings import Settings
from outbox.models import OutboxEntry
from outbox.queue import Outbox
from rooms import hospitals
from rooms.audit import AuditLog
from rooms.service import ConsultService
from rooms.webhooks.events import WebhookEvents

logger = logging.getLogger(__name__)


@dataclass
class ClinicalServices:
    """Notes, prescriptions, allergies, the signing key and the record store.

    :param changes: committed changes of the documents, for the edge to tell the consult's pages.
    """

    notes: NoteService
    prescriptions: PrescriptionService
    allergies: AllergyRegistry
    signer: DocumentSigner
    store: RecordStore
    changes: ChangeFeed
    audit: AuditLog

    async def close(self) -> None:
        """Release the record store's connections (after the outbox worker has stopped)."""
        await self.store.close()


def record_store_from_settings(settings: Settings, database: Database) -> RecordStore:
    """The record store the settings choose: SQL tables, or a FHIR R4 server.

    :raises ValueError: for ``fhir`` without ``fhir_base_url``.
    """
    if settings.record_store == "fhir":
        if not settings.fhir_base_url:
            raise ValueError("TELECONSULT_RECORD_STORE=fhir needs TELECONSULT_FHIR_BASE_URL")
        return FhirRecordStore(settings.fhir_base_url, settings.fhir_timeout_seconds)
    return SqlRecordStore(database)


def hospital_store_lookup(directory: hospitals.HospitalDirectory) -> StoreLookup:
    """Each hospital's own record store, as its record names it (with its decrypted
    credentials); ``None`` (the environment's store) for a hospital without one."""

    async def lookup(code: str) -> StoreSpec | None:
        entry = await directory.get(code, with_secrets=True)
        store = entry.profile.record_store if entry is not None else None
        if store is None:
            return None
        if isinstance(store, hospitals.SqlRecordStore):
            return SqlStoreSpec()
        auth = store.auth
        if isinstance(auth, hospitals.BearerAuth) and auth.token:
            return FhirStoreSpec(store.base_url, BearerSpec(auth.token))
        if isinstance(auth, hospitals.SmartAuth) and auth.private_key_pem:
            smart = SmartSpec(
                auth.token_url, auth.client_id, auth.private_key_pem, auth.key_id, auth.scope
            )
            return FhirStoreSpec(store.base_url, smart)
        return FhirStoreSpec(store.base_url)

    return lookup


def build_clinical(
    settings: Settings,
    database: Database,
    consults: ConsultService,
    outbox: Outbox,
    webhooks: WebhookEvents,
    store_lookup: StoreLookup | None = None,
) -> ClinicalServices:
    """Build the clinical services and register the record store as the outbox's deliverer.

    :param settings: this deployment's settings.
    :param database: the shared database.
    :param consults: the consult service (for timeline entries).
    :param outbox: the outbox signed documents are queued in.
    :param webhooks: where signing and review events are enqueued for the hospital's systems.
    :param store_lookup: a hospital's own record store settings; the env store for the others.
    """
    audit = AuditLog(database)
    signer = DocumentSigner.from_settings(settings)
    store = RecordStores(
        record_store_from_settings(settings, database),
        database,
        settings.fhir_timeout_seconds,
        store_lookup,
    )
    for kind in RECORD_KINDS:
        outbox.register(kind, store)
    allergies = AllergyRegistry(database, audit)
    changes = ChangeFeed()

    async def tell_delivered(entry: OutboxEntry) -> None:
        if entry.kind in RECORD_KINDS:
            document = "note" if entry.kind == "note" else "prescription"
            await changes.publish(
                DocumentChange(entry.consult_id, document, entry.document_id, "delivered")
            )

    outbox.on_delivered(tell_delivered)
    context = DocumentContext(database, audit, signer, outbox, consults, changes, webhooks)
    logger.info(
        "clinical services ready",
        extra={"record_store": settings.record_store, "signing_key_id": signer.key_id},
    )
    return ClinicalServices(
        notes=NoteService(context),
        prescriptions=PrescriptionService(context, allergies),
        allergies=allergies,
        signer=signer,
        store=store,
        changes=changes,
        audit=audit,
    )
