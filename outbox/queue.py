"""The outbox: enqueue in the caller's transaction, see where deliveries stand, retry by hand."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.database import Database
from outbox.deliverer import Deliverer
from outbox.errors import EntryNotFailed, EntryNotFound
from outbox.models import DELIVERED, FAILED, PENDING, OutboxEntry, utcnow

logger = logging.getLogger(__name__)

DeliveredListener = Callable[[OutboxEntry], Awaitable[None]]
"""Told of an entry whose delivery was acknowledged (its owner may tell the users)."""
GaveUpListener = Callable[[AsyncSession, OutboxEntry], Awaitable[None]]
"""Told of an entry that failed its last attempt, inside the transaction that marks it failed
(it may enqueue a report of it there)."""


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """Where a document's delivery stands, for the people who wait for it."""

    status: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def entry_as_dict(entry: OutboxEntry) -> dict[str, Any]:
    """An entry as an admin sees it: its state, never its payload."""
    return {
        "id": entry.id,
        "idempotency_key": entry.idempotency_key,
        "kind": entry.kind,
        "document_id": entry.document_id,
        "consult_id": entry.consult_id,
        "hospital": entry.hospital_id,
        "status": entry.status,
        "attempts": entry.attempts,
        "next_attempt_at": entry.next_attempt_at.isoformat(),
        "last_error": entry.last_error,
        "created_at": entry.created_at.isoformat(),
        "delivered_at": entry.delivered_at.isoformat() if entry.delivered_at else None,
    }


class Outbox:
    """The outbox table and the deliverer of each kind.

    An entry is added in the same transaction as whatever it reports (a signed document is never
    signed without being queued, nor queued without being signed). Each kind has one deliverer,
    registered by the package that owns the kind; :class:`outbox.worker.OutboxWorker` delivers.

    :param database: where entries live.
    :param clock: the current UTC time.
    """

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self._clock = clock
        self._deliverers: dict[str, Deliverer] = {}
        self._listeners: list[Callable[[], None]] = []
        self._delivered_listeners: list[DeliveredListener] = []
        self._gave_up_listeners: list[GaveUpListener] = []
        self._last_enqueued: datetime | None = None

    def register(self, kind: str, deliverer: Deliverer) -> None:
        """Make ``deliverer`` the one that delivers entries of ``kind``.

        :raises ValueError: when the kind already has a deliverer.
        """
        if kind in self._deliverers:
            raise ValueError(f"outbox kind {kind!r} already has a deliverer")
        self._deliverers[kind] = deliverer

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds this process delivers."""
        return frozenset(self._deliverers)

    def deliverer(self, kind: str) -> Deliverer:
        """The deliverer of ``kind``."""
        return self._deliverers[kind]

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed enqueue (the worker's wake-up)."""
        self._listeners.append(listener)

    def on_delivered(self, listener: DeliveredListener) -> None:
        """Call ``listener`` with each entry once its delivery is acknowledged and committed."""
        self._delivered_listeners.append(listener)

    def on_gave_up(self, listener: GaveUpListener) -> None:
        """Call ``listener`` in the transaction that marks an entry failed at its last attempt."""
        self._gave_up_listeners.append(listener)

    async def gave_up(self, session: AsyncSession, entry: OutboxEntry) -> None:
        """Tell the listeners, in ``session``, that ``entry`` failed its last attempt."""
        for listener in self._gave_up_listeners:
            await listener(session, entry)

    async def delivered(self, entry: OutboxEntry) -> None:
        """Tell the listeners an entry was delivered; one that fails is logged (it is done)."""
        for listener in self._delivered_listeners:
            try:
                await listener(entry)
            except Exception:
                logger.exception(
                    "a listener of outbox deliveries failed",
                    extra={"entry_id": entry.id, "kind": entry.kind},
                )

    def notify(self) -> None:
        """Tell the listeners that entries were committed."""
        for listener in self._listeners:
            listener()

    def enqueue(
        self,
        session: AsyncSession,
        *,
        kind: str,
        idempotency_key: str,
        document_id: str,
        consult_id: str,
        hospital_id: str,
        payload: dict[str, Any],
    ) -> None:
        """Add an entry in the caller's transaction (call :meth:`notify` after it commits).

        :param session: the caller's transaction, which also writes what the entry reports.
        :param kind: a registered kind.
        :param idempotency_key: unique per entry; the receiver dedupes on it.
        :param document_id: entries of one document are delivered in the order enqueued.
        :param payload: everything the deliverer needs, as it is now.
        :raises ValueError: for a kind without a deliverer.
        """
        if kind not in self._deliverers:
            raise ValueError(f"outbox kind {kind!r} has no deliverer")
        now = created = self._clock()
        # Order per document follows created_at: two entries enqueued within one tick of the
        # clock (two events of one transaction) must still be told apart.
        if self._last_enqueued is not None and created <= self._last_enqueued:
            created = self._last_enqueued + timedelta(microseconds=1)
        self._last_enqueued = created
        session.add(
            OutboxEntry(
                idempotency_key=idempotency_key,
                kind=kind,
                document_id=document_id,
                consult_id=consult_id,
                hospital_id=hospital_id,
                payload=payload,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=created,
            )
        )

    async def statuses(self, document_ids: Iterable[str]) -> dict[str, DeliveryStatus]:
        """The delivery status of each document: its latest entry's (a review follows a sign)."""
        ids = list(document_ids)
        if not ids:
            return {}
        async with self.database.sessions() as session:
            rows = await session.scalars(
                select(OutboxEntry)
                .where(OutboxEntry.document_id.in_(ids))
                .order_by(OutboxEntry.created_at, OutboxEntry.id)
            )
            found: dict[str, DeliveryStatus] = {}
            for row in rows:
                found[row.document_id] = DeliveryStatus(
                    row.status, row.attempts, row.last_error, row.delivered_at
                )
            return found

    async def entries(
        self,
        hospital_id: str,
        status: str | None = None,
        limit: int = 200,
        kind: str | None = None,
    ) -> list[OutboxEntry]:
        """The entries of a hospital, newest first.

        :param status: only entries in this state (``pending``, ``delivered``, ``failed``).
        :param kind: only entries of this kind.
        """
        query = (
            select(OutboxEntry)
            .where(OutboxEntry.hospital_id == hospital_id)
            .order_by(OutboxEntry.created_at.desc(), OutboxEntry.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(OutboxEntry.status == status)
        if kind is not None:
            query = query.where(OutboxEntry.kind == kind)
        async with self.database.sessions() as session:
            return list(await session.scalars(query))

    async def retry(
        self,
        entry_id: str,
        hospital_id: str,
        *,
        kind: str | None = None,
        delivered_too: bool = False,
    ) -> OutboxEntry:
        """Put a failed entry of a hospital back in the queue with a fresh count of attempts.

        :param kind: only an entry of this kind is found.
        :param delivered_too: a delivered entry is sent again too (a replay to its receiver).
        :raises EntryNotFound: for an unknown entry, one of another hospital or of another kind.
        :raises EntryNotFailed: when the entry is pending, or delivered without ``delivered_too``.
        """
        again = {FAILED, DELIVERED} if delivered_too else {FAILED}
        async with self.database.transaction() as session:
            entry = await session.get(OutboxEntry, entry_id)
            if entry is None or entry.hospital_id != hospital_id:
                raise EntryNotFound(entry_id)
            if kind is not None and entry.kind != kind:
                raise EntryNotFound(entry_id)
            if entry.status not in again:
                raise EntryNotFailed(entry_id)
            entry.status = PENDING
            entry.attempts = 0
            entry.next_attempt_at = self._clock()
            entry.claimed_until = None
            entry.claimed_by = None
            entry.delivered_at = None
        logger.info("outbox entry retried by hand", extra={"entry_id": entry_id})
        self.notify()
        return entry
