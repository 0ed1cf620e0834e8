"""The job lease in the real Redis: one holder at a time, a lost lease stops the job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from signaling.leases import JobLease, once_per_cluster
from tests.outages import PrivateRedis

pytestmark = pytest.mark.redis


async def test_one_node_holds_a_lease_until_it_gives_it_up(redis_client: aioredis.Redis) -> None:
    a = JobLease(redis_client, "retention", "node-a", 5.0)
    b = JobLease(redis_client, "retention", "node-b", 5.0)
    assert await a.acquire()
    assert not await b.acquire()
    assert await a.renew() and not await b.renew()
    await b.release()  # not b's to give up
    assert await a.holder_now() == "node-a"
    await a.release()
    assert await b.acquire() and await b.holder_now() == "node-b"


async def test_a_job_stops_when_its_lease_is_lost_and_runs_again_once_it_is_back(
    redis_client: aioredis.Redis,
) -> None:
    lease = JobLease(redis_client, "renditions", "node-a", 0.6)
    runs: list[str] = []
    stopped = asyncio.Event()

    async def job() -> None:
        runs.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    supervised = asyncio.ensure_future(once_per_cluster(job, lease)())
    try:
        async with asyncio.timeout(10):
            while not runs:  # noqa: ASYNC110 (state of another task)
                await asyncio.sleep(0.02)
            # Another node took the key (this one was paused past its lease, say).
            await redis_client.set(lease.key, "node-b", px=1500)
            await stopped.wait()
            assert runs == ["started"]
            # Node B's lease expires unrenewed: this node takes the job again.
            while len(runs) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await lease.holder_now() == "node-a"
    finally:
        supervised.cancel()
        await asyncio.gather(supervised, return_exceptions=True)
    assert await lease.holder_now() is None  # given up when the job stopped


async def test_a_job_without_a_lease_runs_as_it_is() -> None:
    async def job() -> None:
        return None

    assert once_per_cluster(job, None) is job


async def test_a_redis_outage_stops_the_job_past_its_lease_and_one_node_runs_it_again_after(
    tmp_path: Path,
) -> None:
    server = PrivateRedis(tmp_path / "redis")  # never the shared one: this test stops it
    server.start()
    clients = [aioredis.from_url(server.url, socket_timeout=0.5) for _ in range(2)]
    running: set[str] = set()
    starts: list[str] = []

    def job_of(node: str) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            running.add(node)
            starts.append(node)
            try:
                await asyncio.Event().wait()
            finally:
                running.discard(node)

        return job

    supervised = [
        asyncio.ensure_future(
            once_per_cluster(job_of(node), JobLease(client, "retention", node, 0.9))()
        )
        for node, client in zip(("node-a", "node-b"), clients, strict=True)
    ]
    try:
        async with asyncio.timeout(20):
            while not running:  # noqa: ASYNC110 (state of other tasks)
                await asyncio.sleep(0.02)
            assert len(running) == 1 and starts == list(running)
            await asyncio.to_thread(server.stop)
            while running:  # noqa: ASYNC110 (cancelled once renewals fail past the lease)
                await asyncio.sleep(0.02)
            await asyncio.to_thread(server.start)  # the same port: the nodes' clients reconnect
            while not running:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await asyncio.sleep(2.0)  # two lease lifetimes: the other node has not started it
            assert len(running) == 1, running
            assert len(starts) == 2, starts
    finally:
        for task in supervised:
            task.cancel()
        await asyncio.gather(*supervised, return_exceptions=True)
        for client in clients:
            await client.aclose()
        server.stop()
