"""One of each cluster-wide job: a lease in Redis says which node runs it (docs/cluster.md).

Retention sweeps the whole catalogue; renditions write files every node can read. With several
nodes each such job runs on the one node holding its lease, ``teleconsult:lease:<job>``: a Redis
key set only if absent (``SET NX PX``) to the holder's node id, renewed by the holder every third
of its lifetime with a compare-and-set, deleted by the holder when it stops. A holder that dies
stops renewing; the key expires and the next node to try takes the job over, within one
lifetime. A holder that cannot renew in time (Redis unreachable, the process paused) stops the job
before another node can take it: it cancels the job when the renewal fails and when the
lifetime has passed since the last good renewal, whichever comes first.

Without Redis the process is a cluster of one and runs every job itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

LEASE_HELD = Gauge(
    "teleconsult_job_lease_held",
    "1 while this node holds the cluster-wide lease of a job (and runs it)",
    ["job"],
)
LEASE_TAKEN = Counter(
    "teleconsult_job_lease_taken_total", "Times this node took the lease of a job", ["job"]
)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class JobLease:
    """The lease of one job in Redis, held by at most one node at a time.

    :param redis: the cluster's Redis.
    :param job: the job's name.
    :param holder: this node's id.
    :param seconds: the lease's lifetime; the holder renews it every third of it.
    """

    def __init__(self, redis: aioredis.Redis, job: str, holder: str, seconds: float) -> None:
        self.key = f"teleconsult:lease:{job}"
        self.job = job
        self.holder = holder
        self.seconds = seconds
        self._redis = redis

    async def acquire(self) -> bool:
        """Take the lease if no node holds it."""
        taken = await self._redis.set(self.key, self.holder, nx=True, px=self._milliseconds)
        return bool(taken)

    async def renew(self) -> bool:
        """Extend the lease if this node still holds it."""
        renewed = await self._redis.eval(_RENEW, 1, self.key, self.holder, str(self._milliseconds))
        return bool(renewed)

    async def release(self) -> None:
        """Give the lease up if this node holds it, so another node takes the job at once."""
        await self._redis.eval(_RELEASE, 1, self.key, self.holder)

    async def holder_now(self) -> str | None:
        """The node holding the lease now, if any."""
        value = await self._redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    @property
    def _milliseconds(self) -> int:
        return max(1, int(self.seconds * 1000))


def once_per_cluster(job: Job, lease: JobLease | None) -> Job:
    """
    `job`, run only while this node holds `lease` (always, without a lease).

    The returned job waits for the lease, runs `job` while renewing it, and stops `job` when
    the lease is lost. It returns when `job` returns and raises what `job` raises, releasing
    the lease either way, so the process's supervisor handles its faults as for any job.

    :param job: A supervised job (loops until cancelled).
    :param lease: The job's lease; None in a cluster of one.
    """
    if lease is None:
        return job

    async def run_while_holding() -> None:
        while True:
            try:
                acquired = await lease.acquire()
            except (aioredis.RedisError, OSError):
                acquired = False  # Redis is down: nobody can take it; look again when it is back
            if not acquired:
                await asyncio.sleep(lease.seconds / 3)  # another node holds it: look again
            elif await _run_holding(job, lease):
                return

    return run_while_holding


async def _run_holding(job: Job, lease: JobLease) -> bool:
    """Run `job` while renewing `lease`: True when the job returned, False when the lease was
    lost (the job then stopped); raises what the job raises."""
    loop = asyncio.get_running_loop()
    period = lease.seconds / 3
    LEASE_TAKEN.labels(lease.job).inc()
    LEASE_HELD.labels(lease.job).set(1)
    logger.info("job lease taken", extra={"job": lease.job})
    task = asyncio.ensure_future(job())
    renewed_at = loop.time()
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=period)
            if task.done():
                break
            try:
                held = await asyncio.wait_for(lease.renew(), timeout=period)
            except (TimeoutError, aioredis.RedisError, OSError):
                # Redis does not answer: go on only while the lease surely has not expired.
                held = loop.time() - renewed_at < lease.seconds - period
            else:
                renewed_at = loop.time() if held else renewed_at
            if not held:
                logger.warning("job lease lost; the job stops here", extra={"job": lease.job})
                return False
        task.result()
        return True
    finally:
        LEASE_HELD.labels(lease.job).set(0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(aioredis.RedisError, OSError):
            await asyncio.shield(lease.release())
