"""Background jobs that survive faults: each one restarted after any exception, with backoff.

Every long-running task of a server process (outbox delivery, review renditions, retention,
media-claim renewal, presence refresh, the JWKS refresher) runs under one :class:`Supervisor`.
A job is a coroutine function that loops until cancelled; when it raises, the supervisor logs
the exception's class (never its message: it may carry clinical data), waits (1 s, doubling up
to a cap) and starts it again. Each job's state is in ``/readyz`` and in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from signaling.metrics import JOB_RESTARTS, JOB_RUNNING

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
JobStatus = Literal["running", "backing_off", "finished"]


@dataclass(slots=True)
class JobState:
    """Where one supervised job stands.

    :param status: ``running``, ``backing_off`` (failed, waiting to restart) or ``finished``.
    :param restarts: how many times it was started again after a failure.
    :param last_error: the class of the last exception it raised, if any.
    """

    status: JobStatus = "running"
    restarts: int = 0
    last_error: str | None = None


class Supervisor:
    """Runs background jobs and restarts each one after a failure, with capped exponential backoff.

    :param initial_backoff: seconds before the first restart.
    :param max_backoff: the longest wait between two restarts.
    :param stable_after: a job that ran this long before failing starts over at ``initial_backoff``.
    """

    def __init__(
        self, initial_backoff: float = 1.0, max_backoff: float = 30.0, stable_after: float = 60.0
    ) -> None:
        self._initial = initial_backoff
        self._max = max_backoff
        self._stable_after = stable_after
        self._jobs: dict[str, Job] = {}
        self._states: dict[str, JobState] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, job: Job) -> None:
        """Supervise ``job`` under ``name``; it starts with :meth:`start` (at once after it)."""
        if name in self._jobs:
            raise ValueError(f"a job named {name!r} is supervised already")
        self._jobs[name] = job
        if self._tasks:
            self._launch(name, job)

    def start(self) -> None:
        """Start every job added so far."""
        if not self._tasks:
            for name, job in self._jobs.items():
                self._launch(name, job)

    def _launch(self, name: str, job: Job) -> None:
        self._states[name] = JobState()
        self._tasks.append(asyncio.create_task(self._keep(name, job), name=f"job:{name}"))

    async def stop(self) -> None:
        """Cancel every job and wait until each has stopped."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def states(self) -> dict[str, JobState]:
        """Each started job's state, by name."""
        return dict(self._states)

    def _backoff(self, failures: int) -> float:
        return float(min(self._max, self._initial * 2 ** (failures - 1)))

    async def _keep(self, name: str, job: Job) -> None:
        loop = asyncio.get_running_loop()
        state = self._states[name]
        failures = 0
        while True:
            state.status = "running"
            JOB_RUNNING.labels(name).set(1)
            started = loop.time()
            try:
                await job()
            except asyncio.CancelledError:
                JOB_RUNNING.labels(name).set(0)
                raise
            except Exception as exc:
                failures = 1 if loop.time() - started >= self._stable_after else failures + 1
                wait = self._backoff(failures)
                state.status, state.last_error = "backing_off", type(exc).__name__
                JOB_RUNNING.labels(name).set(0)
                JOB_RESTARTS.labels(name, state.last_error).inc()
                logger.warning(
                    "background job failed; restarting it after a pause",
                    extra={"job": name, "error": state.last_error, "restart_in": wait},
                    exc_info=exc,
                )
                await asyncio.sleep(wait)
                state.restarts += 1
                continue
            state.status = "finished"
            JOB_RUNNING.labels(name).set(0)
            return
