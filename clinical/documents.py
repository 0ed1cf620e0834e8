"""The signed-document core: the lifecycle notes and prescriptions share, from draft to signed."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from clinical.access import (
    AuditScope,
    audited,
    consult_doctor,
    consult_patient,
    consult_snapshot,
    is_patient_of,
    load_consult,
    person,
    require_consult_doctor,
)
from clinical.changes import Change, ChangeFeed, DocumentChange
from clinical.errors import DocumentSigned
from clinical.models import SignedDocument
from clinical.signing import ALGORITHM, DocumentSigner
from config.database import Database
from outbox.queue import DeliveryStatus, Outbox
from rooms.audit import AuditLog
from rooms.errors import DomainError, Forbidden
from rooms.identity import Identity
from rooms.models import utcnow
from rooms.service import ConsultService
from rooms.views import ConsultView
from rooms.webhooks.events import WebhookEvents

logger = logging.getLogger(__name__)

DRAFT, SIGNED = "draft", "signed"

Row = TypeVar("Row", bound=SignedDocument)
View = TypeVar("View")
#: What a type adds to the signed form, checking the draft first (it may refuse to sign).
SignedContent = Callable[[Row, AuditScope], Awaitable[dict[str, Any]]]


def record_of(row: SignedDocument) -> dict[str, Any]:
    """What the record store receives of a signed document."""
    document = row.signed_document or {}
    return {
        "document": document,
        "signature": signature_of(row),
        "consult": document["consult"],
        "practitioner": document[row.author_key],
    }


def signature_of(row: SignedDocument) -> dict[str, str | None] | None:
    """A row's signature as the API and the record store show it; None while a draft."""
    if not row.signature:
        return None
    return {"algorithm": ALGORITHM, "key_id": row.signing_key_id, "value": row.signature}


@dataclass(frozen=True, slots=True)
class DocumentView(Generic[Row]):
    """A document as the API shows it: what every type has, then its own fields (:meth:`own`).

    :param row: the document.
    :param delivery: where its delivery to the record store stands, once queued.
    """

    row: Row
    delivery: DeliveryStatus | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        row = self.row
        return {
            "id": row.id,
            "consult_id": row.consult_id,
            "hospital": row.hospital_id,
            "patient": person(row.patient_sub, row.patient_name),
            row.author_key: person(row.author_sub, row.author_name),
            "status": row.status,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
            "signed_at": row.signed_at.isoformat() if row.signed_at else None,
            "signature": signature_of(row),
            "signed_document": row.signed_document,
            "delivery": self.delivery.as_dict() if self.delivery else None,
            **self.own(),
        }

    def own(self) -> dict[str, Any]:
        """The fields only this type of document has."""
        return {}


@dataclass(frozen=True, slots=True)
class DocumentContext:
    """What every type of signed document works with.

    :param database: where documents live.
    :param audit: the access audit log.
    :param signer: the server's document signing key.
    :param outbox: the queue to the record store.
    :param consults: the consult service (timeline entries).
    :param changes: where committed changes are published.
    :param webhooks: where the ``<kind>.signed`` webhook events are enqueued.
    :param clock: the current UTC time.
    """

    database: Database
    audit: AuditLog
    signer: DocumentSigner
    outbox: Outbox
    consults: ConsultService
    changes: ChangeFeed
    webhooks: WebhookEvents
    clock: Callable[[], datetime] = utcnow


class SignedDocuments(ABC, Generic[Row, View]):
    """The lifecycle of one type of signed document; a note or prescription service extends it.

    A document is drafted by a doctor of its consult and changed only by its author while a
    draft. Signing freezes it: its canonical form is signed with the server's key, kept in the
    row, and queued for the record store in the same transaction. What may follow a signature (an
    amendment, a pharmacist's review) belongs to each type. Every access is audited; every
    committed change is published on the change feed, so that the consult's pages learn of it.

    :param context: the database, audit log, signing key, outbox, consults and change feed.
    """

    #: The type's table.
    model: type[Row]
    #: The type's name: what the audit log, the outbox, the timeline and change events call it.
    kind: str
    #: The ``type`` of its signed form.
    document_type: str
    #: The refusal of an unknown document, or of one the caller may not read.
    not_found: type[DomainError]
    #: Why someone else than the author may not change or sign a draft.
    only_author: str
    #: Why a signed document may not change.
    immutable: str
    #: The order of a consult's documents.
    order: tuple[InstrumentedAttribute[Any], ...]

    def __init__(self, context: DocumentContext) -> None:
        self._database = context.database
        self._audit = context.audit
        self._signer = context.signer
        self._outbox = context.outbox
        self._consults = context.consults
        self._changes = context.changes
        self._webhooks = context.webhooks
        self._clock = context.clock

    async def get(self, caller: Identity, document_id: str, address: str | None = None) -> View:
        """A document: for the consult's doctors, and once signed for its readers (the patient)."""
        async with audited(self._audit, caller, "view", self.kind, document_id, address) as scope:
            row = await self._row(document_id)
            scope.about(row.consult_id, row.hospital_id)
            consult = await load_consult(self._database, row.consult_id)
            if not self._may_read(caller, consult, row):
                raise self._not_found()
        return (await self._views([row]))[0]

    async def for_consult(self, caller: Identity, consult_id: str) -> list[View]:
        """The consult's documents this caller may read (the caller audits the listing)."""
        consult = await load_consult(self._database, consult_id)
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(self.model).where(self.model.consult_id == consult_id).order_by(*self.order)
            )
            readable = [row for row in rows if self._may_read(caller, consult, row)]
        return await self._views(readable)

    @abstractmethod
    async def _views(self, rows: list[Row]) -> list[View]:
        """The views of ``rows``, with their delivery status and whatever else the type shows."""

    async def _create(
        self, caller: Identity, consult_id: str, row: Row, address: str | None
    ) -> Row:
        """Store ``row`` (its own fields filled in) as a new draft of a consult's doctor."""
        async with audited(self._audit, caller, "create", self.kind, consult_id, address) as scope:
            consult = await load_consult(self._database, consult_id)
            scope.about(consult.id, consult.hospital)
            require_consult_doctor(caller, consult)
            patient = consult_patient(consult)
            row.consult_id, row.hospital_id = consult.id, consult.hospital
            row.patient_sub, row.patient_name = patient.sub, patient.name
            await self._insert_draft(row, caller)
            scope.resource_id = row.id
        await self._changed(row, "created")
        return row

    async def _insert_draft(self, row: Row, caller: Identity) -> None:
        """Store ``row`` as a draft written by ``caller`` now."""
        now = self._clock()
        row.author_sub, row.author_name = caller.sub, caller.name
        row.status = DRAFT
        row.created_at = row.updated_at = now
        async with self._database.transaction() as session:
            session.add(row)

    async def _update(
        self,
        caller: Identity,
        document_id: str,
        change: Callable[[Row], None],
        address: str | None,
    ) -> Row:
        """Apply ``change`` to the author's draft and save it."""
        async with audited(self._audit, caller, "update", self.kind, document_id, address) as scope:
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, document_id, scope)
                change(row)
                row.updated_at = self._clock()
        await self._changed(row, "updated")
        return row

    async def _sign(
        self,
        caller: Identity,
        document_id: str,
        content: SignedContent[Row],
        address: str | None,
    ) -> Row:
        """Sign the author's draft: freeze it, sign its canonical form, queue it for the record.

        :param content: checks the draft and gives the type's part of the signed form.
        """
        async with audited(self._audit, caller, "sign", self.kind, document_id, address) as scope:
            async with self._database.transaction() as session:
                row = await self._owned_draft(session, caller, document_id, scope)
                own = await content(row, scope)
                consult = await load_consult(self._database, row.consult_id)
                now = self._clock()
                document = {
                    "type": self.document_type,
                    "id": row.id,
                    "consult": consult_snapshot(consult),
                    "patient": person(row.patient_sub, row.patient_name),
                    row.author_key: person(row.author_sub, row.author_name),
                    "signer": {
                        "sub": caller.sub,
                        "name": caller.name,
                        "role": caller.role.value,
                        "hospital": caller.hospital,
                    },
                    "signed_at": now.isoformat(),
                    **own,
                }
                signature = self._signer.sign(document)
                row.status = SIGNED
                row.signed_at = row.updated_at = now
                row.signed_document = document
                row.signature, row.signing_key_id = signature.value, signature.key_id
                record = record_of(row) | await self._record_extras(session, row)
                self._enqueue(session, row, self.kind, f"{self.kind}:{row.id}", record)
                await self._emit(session, row, "signed", {"signed_at": now.isoformat()})
        self._outbox.notify()
        await self._consults.note(
            row.consult_id, caller, f"{self.kind}_signed", {f"{self.kind}_id": row.id}
        )
        await self._changed(row, "signed")
        logger.info("clinical document signed", extra={"kind": self.kind, "document_id": row.id})
        return row

    async def _record_extras(self, session: AsyncSession, row: Row) -> dict[str, Any]:
        """What the record store receives beside a signed document of this type (nothing)."""
        return {}

    def _enqueue(
        self,
        session: AsyncSession,
        row: Row,
        kind: str,
        idempotency_key: str,
        payload: dict[str, Any],
    ) -> None:
        """Queue a delivery about ``row`` in the transaction that changes it."""
        self._outbox.enqueue(
            session,
            kind=kind,
            idempotency_key=idempotency_key,
            document_id=row.id,
            consult_id=row.consult_id,
            hospital_id=row.hospital_id,
            payload=payload,
        )

    async def _emit(self, session: AsyncSession, row: Row, what: str, data: dict[str, Any]) -> None:
        """Enqueue the webhook event ``<kind>.<what>`` about ``row``: its ids and status only."""
        await self._webhooks.emit(
            session,
            f"{self.kind}.{what}",
            hospital=row.hospital_id,
            consult_id=row.consult_id,
            data={f"{self.kind}_id": row.id, "status": row.status, **data},
        )

    async def _changed(self, row: Row, change: Change) -> None:
        """Publish a committed change of ``row``."""
        await self._changes.publish(DocumentChange(row.consult_id, self.kind, row.id, change))

    def _not_found(self) -> DomainError:
        return self.not_found(f"No such {self.kind}")

    async def _row(self, document_id: str) -> Row:
        async with self._database.sessions() as session:
            row = await session.get(self.model, document_id)
        if row is None:
            raise self._not_found()
        return row

    async def _owned_draft(
        self, session: AsyncSession, caller: Identity, document_id: str, scope: AuditScope
    ) -> Row:
        """The draft, in the caller's transaction, when the caller is its author and a doctor."""
        row = await session.get(self.model, document_id)
        if row is None:
            raise self._not_found()
        scope.about(row.consult_id, row.hospital_id)
        consult = await load_consult(self._database, row.consult_id)
        require_consult_doctor(caller, consult)
        if row.author_sub != caller.sub:
            raise Forbidden(self.only_author)
        if row.status != DRAFT:
            raise DocumentSigned(self.immutable)
        return row

    def _may_read(self, caller: Identity, consult: ConsultView, row: Row) -> bool:
        """The consult's doctors read every version; others only what was signed."""
        if consult_doctor(caller, consult) is not None:
            return True
        return row.status != DRAFT and self._reads_signed(caller, row)

    def _reads_signed(self, caller: Identity, row: Row) -> bool:
        """Whether someone not a doctor of the consult reads a signed document: its patient."""
        return is_patient_of(caller, row.consult_id, row.patient_sub, row.hospital_id)
