"""The outbox worker: delivers due entries with backoff, under a lease, in order per document."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult

from config.settings import Settings
from outbox.deliverer import Delivery
from outbox.models import DELIVERED, FAILED, PENDING, OutboxEntry, utcnow
from outbox.queue import Outbox

logger = logging.getLogger(__name__)

#: The longest wait between two attempts, however many failed.
MAX_BACKOFF = timedelta(minutes=15)
#: Entries claimed per pass.
BATCH = 20

OUTBOX_DELIVERED = Counter(
    "teleconsult_outbox_delivered_total", "Outbox entries their receiver acknowledged", ["kind"]
)
OUTBOX_ATTEMPTS_FAILED = Counter(
    "teleconsult_outbox_attempts_failed_total",
    "Delivery attempts the receiver refused or did not answer",
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

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboxPolicy:
        """The policy this deployment's settings give (``TELECONSULT_OUTBOX_*``)."""
        return cls(
            max_attempts=settings.outbox_max_attempts,
            backoff_seconds=settings.outbox_backoff_seconds,
            lease_seconds=settings.outbox_lease_seconds,
            poll_seconds=settings.outbox_poll_seconds,
        )

    def backoff(self, attempts: int) -> timedelta:
        """The wait after ``attempts`` failed attempts."""
        wait = timedelta(seconds=self.backoff_seconds * 2 ** max(attempts - 1, 0))
        return min(wait, MAX_BACKOFF)


class OutboxWorker:
    """Delivers due entries of the registered kinds, one at a time, in the background.

    A worker runs in every server process. A lease on each claimed entry keeps processes from
    delivering the same entry at once, and lets a restarted process pick up what a dead one held.
    Delivery is at least once; receivers make it exactly once by the idempotency key.

    :param outbox: the entries and the deliverer of each kind.
    :param policy: attempts, backoff, lease and poll interval.
    :param clock: the current UTC time.
    """

    def __init__(
        self, outbox: Outbox, policy: OutboxPolicy, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._outbox = outbox
        self._database = outbox.database
        self._policy = policy
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        outbox.on_enqueue(self.wake)

    def wake(self) -> None:
        """Look for due entries now (called after an enqueue commits)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due entries until cancelled; waits between passes, woken by new entries.

        A pass that fails as a whole (the database does not answer) raises: the process's
        supervisor restarts the worker after a pause.
        """
        while True:
            self._wake.clear()
            await self.deliver_due()
            pause = await self._next_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _next_wait(self) -> float:
        """Seconds until the next entry is due (at most the poll interval)."""
        async with self._database.sessions() as session:
            due = await session.scalar(
                select(OutboxEntry.next_attempt_at)
                .where(OutboxEntry.status == PENDING, OutboxEntry.kind.in_(self._outbox.kinds))
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
                    # A kind this process has no deliverer for is left to those that have one.
                    OutboxEntry.kind.in_(self._outbox.kinds),
                    OutboxEntry.next_attempt_at <= now,
                    or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now),
                    ~blocked,  # a later entry of a document waits until the earlier is delivered
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
            assert isinstance(result, CursorResult)  # an UPDATE's result counts its rows
            if result.rowcount != 1:
                return None  # another process took it
            return await session.get(OutboxEntry, entry_id)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        delivery = Delivery(entry.kind, entry.idempotency_key, entry.payload)
        try:
            await self._outbox.deliverer(entry.kind).deliver(delivery)
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
        await self._outbox.delivered(entry)
        logger.info(
            "outbox entry delivered",
            extra={"entry_id": entry.id, "kind": entry.kind, "attempts": entry.attempts + 1},
        )
        return True

    async def _failed(self, entry: OutboxEntry, exc: Exception) -> None:
        attempts = entry.attempts + 1
        # The receiver's message may echo the document: it is stored for the admin, never logged.
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
            if gave_up:
                entry.attempts, entry.last_error = attempts, error
                await self._outbox.gave_up(session, entry)
        extra = {
            "entry_id": entry.id,
            "kind": entry.kind,
            "attempts": attempts,
            "error": type(exc).__name__,
        }
        if gave_up:
            OUTBOX_GAVE_UP.labels(entry.kind).inc()
            logger.error("outbox entry failed every attempt; an admin may retry it", extra=extra)
        else:
            logger.warning("outbox delivery failed; will retry", extra=extra)
