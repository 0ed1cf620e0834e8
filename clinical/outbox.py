"""The outbox: signed documents wait here until the hospital record store has acknowledged them.

Signing adds an entry in the same transaction as the document, so a document is never signed
without being queued, nor queued without being signed. A worker in every server process delivers
due entries with exponential backoff; a lease on each claimed entry keeps processes from
delivering the same entry at once, and lets a restarted process pick up what a dead one held.
Delivery is at least once; the record store makes it exactly once by the idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinical.errors import NotFailed, OutboxEntryNotFound
from clinical.models import OutboxEntry
from clinical.record_store import Delivery, RecordStore
from config.database import Database
from rooms.errors import Forbidden
from rooms.identity import Identity, Role
from rooms.models import utcnow

logger = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
#: The longest wait between two attempts, however many failed.
MAX_BACKOFF = timedelta(minutes=15)
#: Entries claimed per pass.
BATCH = 20

OUTBOX_DELIVERED = Counter(
    "teleconsult_outbox_delivered_total", "Outbox entries the record store acknowledged", ["kind"]
)
OUTBOX_ATTEMPTS_FAILED = Counter(
    "teleconsult_outbox_attempts_failed_total",
    "Delivery attempts the record store refused or did not answer",
    ["kind"],
)
OUTBOX_GAVE_UP = Counter(
    "teleconsult_outbox_failed_total",
    "Outbox entries that failed every attempt and wait for an admin to retry them",
    ["kind"],
)


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """How hard the worker tries.

    :param max_attempts: attempts before an entry is marked failed.
    :param backoff_seconds: wait after the first failure; doubles after each further one.
    :param lease_seconds: how long a process holds an entry it is delivering.
    :param poll_seconds: how often the worker looks for due entries when nobody wakes it.
    """

    max_attempts: int = 8
    backoff_seconds: float = 2.0
    lease_seconds: float = 60.0
    poll_seconds: float = 5.0

    def backoff(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts."""
        wait = timedelta(seconds=self.backoff_seconds * 2 ** max(attempts - 1, 0))
        return min(wait, MAX_BACKOFF)


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """Where a document's delivery to the record store stands, for the doctor and the admin."""

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
    """An entry as the admin sees it: its state, never the clinical payload."""
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
    """The outbox table: enqueue inside a signing transaction, read statuses, retry by hand.

    :param database: where entries live.
    :param clock: the current UTC time.
    """

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self._database = database
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def on_enqueue(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed enqueue (the worker's wake-up)."""
        self._listeners.append(listener)

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

        :param session: the transaction that also writes the document.
        :param kind: ``note``, ``prescription`` or ``prescription_review``.
        :param idempotency_key: unique per delivery; the record store dedupes on it.
        :param payload: everything the record store needs, as it was when signed.
        """
        now = self._clock()
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
                created_at=now,
            )
        )

    async def statuses(self, document_ids: Iterable[str]) -> dict[str, DeliveryStatus]:
        """The delivery status of each document: its latest entry's (a review follows a sign)."""
        ids = list(document_ids)
        if not ids:
            return {}
        async with self._database.sessions() as session:
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
        self, caller: Identity, status: str | None = None, limit: int = 200
    ) -> list[OutboxEntry]:
        """The entries of the admin's hospital, newest first.

        :raises Forbidden: for anyone but an admin.
        """
        _require_admin(caller)
        query = (
            select(OutboxEntry)
            .where(OutboxEntry.hospital_id == caller.hospital)
            .order_by(OutboxEntry.created_at.desc(), OutboxEntry.id)
            .limit(limit)
        )
        if status is not None:
            query = query.where(OutboxEntry.status == status)
        async with self._database.sessions() as session:
            return list(await session.scalars(query))

    async def retry(self, caller: Identity, entry_id: str) -> OutboxEntry:
        """Put a failed entry back in the queue with a fresh count of attempts.

        :raises Forbidden: for anyone but an admin.
        :raises OutboxEntryNotFound: for an unknown entry or one of another hospital.
        :raises NotFailed: when the entry has not failed.
        """
        _require_admin(caller)
        async with self._database.transaction() as session:
            entry = await session.get(OutboxEntry, entry_id)
            if entry is None or entry.hospital_id != caller.hospital:
                raise OutboxEntryNotFound("No such outbox entry")
            if entry.status != FAILED:
                raise NotFailed("Only a failed entry can be retried")
            entry.status = PENDING
            entry.attempts = 0
            entry.next_attempt_at = self._clock()
            entry.claimed_until = None
            entry.claimed_by = None
        logger.info("outbox entry retried by an admin", extra={"entry_id": entry_id})
        self.notify()
        return entry


def _require_admin(caller: Identity) -> None:
    if caller.role is not Role.ADMIN:
        raise Forbidden("Only an admin sees the outbox")


class OutboxWorker:
    """Delivers due outbox entries to the record store, one at a time, in the background.

    :param database: where entries live.
    :param store: the hospital record store.
    :param policy: attempts, backoff, lease and poll interval.
    :param clock: the current UTC time.
    """

    def __init__(
        self,
        database: Database,
        store: RecordStore,
        policy: OutboxPolicy,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._store = store
        self._policy = policy
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for due entries now (called after an enqueue commits)."""
        self._wake.set()

    def start(self) -> None:
        """Start delivering in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="clinical-outbox")

    async def stop(self) -> None:
        """Stop delivering; an entry being delivered stays claimed until its lease expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._store.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox pass failed")
            pause = await self._next_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _next_wait(self) -> float:
        """Seconds until the next entry is due (at most the poll interval)."""
        async with self._database.sessions() as session:
            due = await session.scalar(
                select(OutboxEntry.next_attempt_at)
                .where(OutboxEntry.status == PENDING)
                .order_by(OutboxEntry.next_attempt_at)
                .limit(1)
            )
        if due is None:
            return self._policy.poll_seconds
        seconds = (due - self._clock()).total_seconds()
        return min(max(seconds, 0.01), self._policy.poll_seconds)

    async def deliver_due(self) -> int:
        """Deliver every entry that is due now; the number delivered."""
        delivered = 0
        for entry_id in await self._due():
            entry = await self._claim(entry_id)
            if entry is not None and await self._deliver(entry):
                delivered += 1
        return delivered

    async def _due(self) -> list[str]:
        now = self._clock()
        earlier = OutboxEntry.__table__.alias("earlier")
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.document_id == OutboxEntry.document_id,
                earlier.c.status != DELIVERED,
                earlier.c.created_at < OutboxEntry.created_at,
            )
            .exists()
        )
        async with self._database.sessions() as session:
            ids = await session.scalars(
                select(OutboxEntry.id)
                .where(
                    OutboxEntry.status == PENDING,
                    OutboxEntry.next_attempt_at <= now,
                    or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now),
                    ~blocked,  # a review waits until its prescription is delivered
                )
                .order_by(OutboxEntry.created_at, OutboxEntry.id)
                .limit(BATCH)
            )
            return list(ids)

    async def _claim(self, entry_id: str) -> OutboxEntry | None:
        now = self._clock()
        lease = now + timedelta(seconds=self._policy.lease_seconds)
        async with self._database.transaction() as session:
            result = await session.execute(
                update(OutboxEntry)
                .where(
                    OutboxEntry.id == entry_id,
                    OutboxEntry.status == PENDING,
                    or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now),
                )
                .values(claimed_until=lease, claimed_by=self._owner)
            )
            if result.rowcount != 1:
                return None  # another process took it
            return await session.get(OutboxEntry, entry_id)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        delivery = Delivery(entry.kind, entry.idempotency_key, entry.payload)
        try:
            await self._store.deliver(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(entry, exc)
            return False
        async with self._database.transaction() as session:
            await session.execute(
                update(OutboxEntry)
                .where(and_(OutboxEntry.id == entry.id, OutboxEntry.claimed_by == self._owner))
                .values(
                    status=DELIVERED,
                    attempts=entry.attempts + 1,
                    delivered_at=self._clock(),
                    claimed_until=None,
                    last_error=None,
                )
            )
        OUTBOX_DELIVERED.labels(entry.kind).inc()
        logger.info(
            "outbox entry delivered",
            extra={"entry_id": entry.id, "kind": entry.kind, "attempts": entry.attempts + 1},
        )
        return True

    async def _failed(self, entry: OutboxEntry, exc: Exception) -> None:
        attempts = entry.attempts + 1
        error = f"{type(exc).__name__}: {exc}"[:500]
        gave_up = attempts >= self._policy.max_attempts
        OUTBOX_ATTEMPTS_FAILED.labels(entry.kind).inc()
        async with self._database.transaction() as session:
            await session.execute(
                update(OutboxEntry)
                .where(and_(OutboxEntry.id == entry.id, OutboxEntry.claimed_by == self._owner))
                .values(
                    status=FAILED if gave_up else PENDING,
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=self._clock() + self._policy.backoff(attempts),
                    claimed_until=None,
                )
            )
        extra = {"entry_id": entry.id, "kind": entry.kind, "attempts": attempts, "error": error}
        if gave_up:
            OUTBOX_GAVE_UP.labels(entry.kind).inc()
            logger.error("outbox entry failed every attempt; an admin may retry it", extra=extra)
        else:
            logger.warning("outbox delivery failed; will retry", extra=extra)
