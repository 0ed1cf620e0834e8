"""The outbox on its own, with a kind of the test's, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from config.database import Database
from migrations.runner import upgrade
from outbox.deliverer import Delivery
from outbox.errors import EntryNotFailed, EntryNotFound
from outbox.models import OutboxEntry
from outbox.queue import Outbox
from outbox.worker import OutboxPolicy, OutboxWorker
from signaling.supervisor import Supervisor
from tests.outages import PrivatePostgres

KIND = "parcel"
HOSPITAL = "h-east"
POLICY = OutboxPolicy(max_attempts=3, backoff_seconds=2.0, lease_seconds=30.0, poll_seconds=0.05)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Courier:
    """The deliverer of the test's kind: keeps what it delivered, refuses while told to."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.attempts: Counter[str] = Counter()
        self.refuse: set[str] = set()
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def deliver(self, delivery: Delivery) -> None:
        key = delivery.idempotency_key
        self.attempts[key] += 1
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        if key in self.refuse:
            raise ConnectionError("the receiver is down")
        assert delivery.kind == KIND and delivery.payload == {"parcel": key}
        self.delivered.append(key)


def process(database: Database, clock: Clock, courier: Courier) -> tuple[Outbox, OutboxWorker]:
    """One server process's outbox, with the courier registered for the test's kind."""
    outbox = Outbox(database, clock)
    outbox.register(KIND, courier)
    return outbox, OutboxWorker(outbox, POLICY, clock)


async def enqueue(outbox: Outbox, key: str, document: str = "doc-1") -> None:
    async with outbox.database.transaction() as session:
        outbox.enqueue(
            session,
            kind=KIND,
            idempotency_key=key,
            document_id=document,
            consult_id="consult-1",
            hospital_id=HOSPITAL,
            payload={"parcel": key},
        )
    outbox.notify()


async def entry(outbox: Outbox, key: str) -> OutboxEntry:
    return next(e for e in await outbox.entries(HOSPITAL) if e.idempotency_key == key)


def gave_up_total() -> float:
    return REGISTRY.get_sample_value("teleconsult_outbox_failed_total", {"kind": KIND}) or 0


async def test_a_documents_entries_are_delivered_in_order_even_when_the_first_must_wait(
    database: Database,
) -> None:
    clock, courier = Clock(), Courier()
    outbox, worker = process(database, clock, courier)
    await enqueue(outbox, "signed", document="doc-a")
    clock.advance(1)
    await enqueue(outbox, "reviewed", document="doc-a")
    clock.advance(1)
    await enqueue(outbox, "other", document="doc-b")
    courier.refuse = {"signed"}

    assert await worker.deliver_due() == 1
    assert courier.delivered == ["other"]  # "reviewed" waits behind "signed"
    courier.refuse = set()
    assert await worker.deliver_due() == 0  # "signed" waits for its backoff
    clock.advance(2)
    assert await worker.deliver_due() == 1
    assert await worker.deliver_due() == 1
    assert courier.delivered == ["other", "signed", "reviewed"]
    assert courier.attempts["reviewed"] == 1


async def test_entries_of_a_document_enqueued_within_one_clock_tick_keep_their_order(
    database: Database,
) -> None:
    # Two webhook events of one transaction (a consult starts as its host joins) share a tick.
    clock, courier = Clock(), Courier()
    outbox, worker = process(database, clock, courier)
    await enqueue(outbox, "started", document="consult-a")
    await enqueue(outbox, "joined", document="consult-a")
    courier.refuse = {"started"}
    assert await worker.deliver_due() == 0
    assert courier.attempts["joined"] == 0, "the later entry waits behind the earlier"
    courier.refuse = set()
    clock.advance(2)
    assert await worker.deliver_due() == 1
    assert await worker.deliver_due() == 1
    assert courier.delivered == ["started", "joined"]


async def test_a_crashed_process_lease_is_taken_over_once_it_expires(database: Database) -> None:
    clock, stuck, courier = Clock(), Courier(), Courier()
    first, crashing = process(database, clock, stuck)
    _, survivor = process(database, clock, courier)
    await enqueue(first, "parcel-1")

    stuck.hold = asyncio.Event()
    delivering = asyncio.create_task(crashing.deliver_due())
    await asyncio.wait_for(stuck.holding.wait(), 10)
    delivering.cancel()  # the process dies in the middle of the delivery
    with pytest.raises(asyncio.CancelledError):
        await delivering

    assert await survivor.deliver_due() == 0  # the dead process still holds the lease
    clock.advance(POLICY.lease_seconds + 1)
    assert await survivor.deliver_due() == 1
    assert courier.delivered == ["parcel-1"]
    delivered = await entry(first, "parcel-1")
    assert (delivered.status, delivered.attempts) == ("delivered", 1)


async def test_failed_attempts_wait_a_backoff_that_doubles(database: Database) -> None:
    clock, courier = Clock(), Courier()
    outbox, worker = process(database, clock, courier)
    await enqueue(outbox, "parcel-1")
    courier.refuse = {"parcel-1"}

    await worker.deliver_due()
    first = await entry(outbox, "parcel-1")
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error == "ConnectionError: the receiver is down"
    assert first.next_attempt_at == clock.now + timedelta(seconds=2)
    clock.advance(1.9)
    await worker.deliver_due()
    assert courier.attempts["parcel-1"] == 1  # not due yet
    clock.advance(0.1)
    await worker.deliver_due()
    second = await entry(outbox, "parcel-1")
    assert second.attempts == 2
    assert second.next_attempt_at == clock.now + timedelta(seconds=4)
    assert OutboxPolicy(backoff_seconds=2.0).backoff(30) == timedelta(minutes=15)


async def test_an_entry_failing_every_attempt_is_counted_and_retried_by_hand(
    database: Database,
) -> None:
    clock, courier = Clock(), Courier()
    outbox, worker = process(database, clock, courier)
    await enqueue(outbox, "parcel-1")
    courier.refuse = {"parcel-1"}
    gave_up_before = gave_up_total()

    for _ in range(POLICY.max_attempts):
        await worker.deliver_due()
        clock.advance(60)
    failed = await entry(outbox, "parcel-1")
    assert (failed.status, failed.attempts) == ("failed", POLICY.max_attempts)
    assert gave_up_total() == gave_up_before + 1
    await worker.deliver_due()
    assert courier.attempts["parcel-1"] == POLICY.max_attempts  # it waits for an admin

    with pytest.raises(EntryNotFound):
        await outbox.retry(failed.id, "h-west")
    retried = await outbox.retry(failed.id, HOSPITAL)
    assert (retried.status, retried.attempts) == ("pending", 0)
    with pytest.raises(EntryNotFailed):
        await outbox.retry(failed.id, HOSPITAL)
    courier.refuse = set()
    assert await worker.deliver_due() == 1
    assert courier.delivered == ["parcel-1"]


async def test_an_entry_belongs_to_the_callers_transaction_and_to_a_registered_kind(
    database: Database,
) -> None:
    clock, courier = Clock(), Courier()
    outbox, worker = process(database, clock, courier)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            outbox.enqueue(
                session,
                kind=KIND,
                idempotency_key="rolled-back",
                document_id="doc-1",
                consult_id="consult-1",
                hospital_id=HOSPITAL,
                payload={},
            )
            raise RuntimeError("the caller's own write failed")
    assert await outbox.entries(HOSPITAL) == []
    with pytest.raises(ValueError):
        await enqueue(Outbox(database, clock), "no-deliverer")
    with pytest.raises(ValueError):
        outbox.register(KIND, Courier())

    # A process without a deliverer for the kind leaves its entries to those that have one.
    await enqueue(outbox, "parcel-1")
    stranger = OutboxWorker(Outbox(database, clock), POLICY, clock)
    assert await stranger.deliver_due() == 0
    assert await worker.deliver_due() == 1


async def test_the_supervised_worker_restarts_after_its_database_went_down(
    private_postgres: PrivatePostgres,
) -> None:
    await asyncio.to_thread(upgrade, private_postgres.url)
    database = Database(private_postgres.url)
    courier = Courier()
    outbox = Outbox(database)
    outbox.register(KIND, courier)
    supervisor = Supervisor(initial_backoff=0.1, max_backoff=0.5)
    supervisor.add("outbox", OutboxWorker(outbox, POLICY).run)
    supervisor.start()
    try:
        await enqueue(outbox, "parcel-1")
        await eventually(lambda: courier.delivered == ["parcel-1"])

        await asyncio.to_thread(private_postgres.stop)  # a real fault: the server is gone
        await eventually(lambda: supervisor.states()["outbox"].status == "backing_off")
        down = supervisor.states()["outbox"]
        assert down.last_error is not None and down.restarts >= 0

        await asyncio.to_thread(private_postgres.start)
        await enqueue(outbox, "parcel-2")
        await eventually(lambda: courier.delivered == ["parcel-1", "parcel-2"], seconds=30)
        state = supervisor.states()["outbox"]
        assert state.status == "running" and state.restarts >= 1
        assert courier.attempts == {"parcel-1": 1, "parcel-2": 1}
    finally:
        await supervisor.stop()
        await database.dispose()


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("it never happened")
