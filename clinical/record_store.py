"""The hospital record store: one interface, SQL tables (the default) or an HL7 FHIR R4 server.

Both implementations are the outbox's deliverer of the record kinds, and idempotent under its
idempotency key: delivering the same entry twice leaves one record.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from sqlalchemy.exc import IntegrityError

from clinical import fhir
from clinical.models import RecordEncounter, RecordNote, RecordPrescription
from config.database import Database
from outbox.deliverer import Deliverer, Delivery
from rooms.models import utcnow

logger = logging.getLogger(__name__)


#: The outbox kinds the record store delivers: a signed note, a signed prescription, a review.
RECORD_KINDS = ("note", "prescription", "prescription_review")


class DeliveryFailed(Exception):
    """The record store did not acknowledge a delivery (the message names no clinical content)."""


class RecordStore(Deliverer, Protocol):
    """Where signed notes and prescriptions end up: the hospital's medical record.

    The outbox's deliverer of :data:`RECORD_KINDS`.
    """

    async def close(self) -> None:
        """Release connections."""


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class SqlRecordStore:
    """The record as tables in our own database: encounters, notes and prescriptions.

    :param database: the database holding the record tables.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    async def deliver(self, delivery: Delivery) -> None:
        """Insert the record once; a second delivery of the same entry changes nothing."""
        try:
            async with self._database.transaction() as session:
                payload = delivery.payload
                document = payload["document"]
                consult = payload["consult"]
                if await session.get(RecordEncounter, consult["id"]) is None:
                    session.add(
                        RecordEncounter(
                            id=consult["id"],
                            hospital_id=consult["hospital"],
                            patient_sub=document["patient"]["sub"],
                            encounter_class="VR",
                            title=consult["title"],
                            started_at=_parse(consult.get("started_at")),
                            recorded_at=utcnow(),
                        )
                    )
                    await session.flush()
                if delivery.kind == "note":
                    if await session.get(RecordNote, document["id"]) is None:
                        session.add(
                            RecordNote(
                                id=document["id"],
                                encounter_id=consult["id"],
                                amends_id=document["amends"],
                                document=document,
                                signature=payload["signature"]["value"],
                                signing_key_id=payload["signature"]["key_id"],
                                idempotency_key=delivery.idempotency_key,
                                recorded_at=utcnow(),
                            )
                        )
                elif delivery.kind == "prescription":
                    if await session.get(RecordPrescription, document["id"]) is None:
                        session.add(
                            RecordPrescription(
                                id=document["id"],
                                encounter_id=consult["id"],
                                status="signed",
                                document=document,
                                signature=payload["signature"]["value"],
                                signing_key_id=payload["signature"]["key_id"],
                                idempotency_key=delivery.idempotency_key,
                                recorded_at=utcnow(),
                            )
                        )
                elif delivery.kind == "prescription_review":
                    record = await session.get(RecordPrescription, document["id"])
                    if record is None:
                        raise DeliveryFailed("the reviewed prescription is not in the record yet")
                    record.status = payload["review"]["outcome"]
                    record.review = payload["review"]
                else:
                    raise DeliveryFailed(f"unknown kind {delivery.kind!r}")
        except IntegrityError:
            # Another process recorded it between our read and our insert: it is there.
            logger.info("record already written", extra={"key": delivery.idempotency_key})

    async def close(self) -> None:
        """Nothing to release: the database is shared with the rest of the server."""


class FhirRecordStore:
    """The record on an HL7 FHIR R4 server: Encounter, Composition, MedicationRequest, Provenance.

    Each resource is validated with fhir.resources and written with ``PUT [base]/[type]/[id]``
    (update-as-create) under a deterministic id, so a retry updates instead of duplicating.

    :param base_url: the FHIR server's base, e.g. ``https://his.example/fhir``.
    :param timeout_seconds: the limit of each request.
    """

    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def deliver(self, delivery: Delivery) -> None:
        """PUT every resource of the entry, in order; fails on the first one not acknowledged."""
        resources = fhir.resources_for(delivery.kind, delivery.payload)
        for resource in resources:
            await self._put(resource, delivery.idempotency_key)

    async def _put(self, resource: dict[str, Any], key: str) -> None:
        kind, resource_id = resource["resourceType"], resource["id"]
        url = f"{self._base_url}/{kind}/{resource_id}"
        headers = {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
            "X-Request-Id": f"{key}/{kind}/{resource_id}",
        }
        try:
            async with self._client().put(url, json=resource, headers=headers) as response:
                if response.status not in (200, 201):
                    raise DeliveryFailed(
                        f"{kind}/{resource_id}: FHIR server answered {response.status}"
                    )
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"{kind}/{resource_id}: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None
