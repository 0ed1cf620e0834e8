"""The hospital record store: one interface, SQL tables (the default) or an HL7 FHIR R4 server.

Both implementations are the outbox's deliverer of the record kinds, and idempotent under its
idempotency key: delivering the same entry twice leaves one record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from sqlalchemy.exc import IntegrityError

from clinical import fhir
from clinical.fhir_auth import AuthFailed, AuthSpec, FhirAuth, NoAuth, auth_from
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

    A 401 makes the authentication forget its token; the request is retried once with a new one.

    :param base_url: the FHIR server's base, e.g. ``https://his.example/fhir``.
    :param timeout_seconds: the limit of each request.
    :param auth: how requests authenticate (none by default).
    """

    def __init__(
        self, base_url: str, timeout_seconds: float = 10.0, auth: FhirAuth | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._auth: FhirAuth = auth or NoAuth()
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
        http = self._client()
        try:
            for attempt in range(2):
                auth = await self._auth.headers(http)
                async with http.put(url, json=resource, headers=headers | auth) as response:
                    await response.read()
                    status = response.status
                if status == 401 and attempt == 0:
                    self._auth.forget()
                    continue
                break
        except AuthFailed as exc:
            raise DeliveryFailed(f"{kind}/{resource_id}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryFailed(f"{kind}/{resource_id}: {type(exc).__name__}") from exc
        if status not in (200, 201):
            raise DeliveryFailed(f"{kind}/{resource_id}: FHIR server answered {status}")

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True, slots=True)
class SqlStoreSpec:
    """A hospital whose records go to the SQL tables of our database."""


@dataclass(frozen=True, slots=True)
class FhirStoreSpec:
    """A hospital whose records go to its FHIR server, reached with its credentials."""

    base_url: str
    auth: AuthSpec = None


#: A hospital's own record store, as its settings describe it (compared by value).
StoreSpec = SqlStoreSpec | FhirStoreSpec

#: The record store settings of a hospital by its code; ``None`` when it has none of its own and
#: the deployment's default store (from the environment settings) takes its records.
StoreLookup = Callable[[str], Awaitable[StoreSpec | None]]


class RecordStores:
    """The outbox's deliverer of the record kinds: each entry goes to the store of the hospital
    that owns the consult (``payload["consult"]["hospital"]``), whoever wrote the document.

    A hospital's store is kept while its settings stay the same (so a SMART token cache lives
    on), and replaced when they change.

    :param default: the store of hospitals without one of their own.
    :param database: the database of hospitals whose own store is SQL.
    :param timeout_seconds: the limit of each request to a hospital's FHIR server.
    :param lookup: a hospital's own store settings, or ``None``.
    """

    def __init__(
        self,
        default: RecordStore,
        database: Database,
        timeout_seconds: float,
        lookup: StoreLookup | None = None,
    ) -> None:
        self._default = default
        self._sql = SqlRecordStore(database)
        self._timeout_seconds = timeout_seconds
        self._lookup = lookup
        self._stores: dict[str, tuple[FhirStoreSpec, FhirRecordStore]] = {}

    async def for_hospital(self, hospital: str) -> RecordStore:
        """The record store of ``hospital``, per its settings now."""
        spec = await self._lookup(hospital) if self._lookup is not None else None
        if spec is None:
            return self._default
        if isinstance(spec, SqlStoreSpec):
            return self._sql
        kept = self._stores.get(hospital)
        if kept is not None and kept[0] == spec:
            return kept[1]
        store = FhirRecordStore(spec.base_url, self._timeout_seconds, auth_from(spec.auth))
        self._stores[hospital] = (spec, store)
        if kept is not None:
            await kept[1].close()
        return store

    async def deliver(self, delivery: Delivery) -> None:
        """Deliver to the store of the consult's hospital."""
        store = await self.for_hospital(delivery.payload["consult"]["hospital"])
        await store.deliver(delivery)

    async def close(self) -> None:
        """Close the default store and every hospital's store."""
        await self._default.close()
        for _, store in self._stores.values():
            await store.close()
