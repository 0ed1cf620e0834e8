"""The supervisor: a background job that fails is started again, and says how it fares."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from signaling.supervisor import Supervisor


async def test_a_failing_job_is_restarted_until_it_runs_and_its_state_says_so() -> None:
    supervisor = Supervisor(initial_backoff=0.01, max_backoff=0.02)
    failures = ["ConnectionRefusedError", "KeyError"]
    running = asyncio.Event()

    async def flaky() -> None:
        if failures:
            kind = failures.pop(0)
            raise ConnectionRefusedError() if kind == "ConnectionRefusedError" else KeyError("x")
        running.set()
        await asyncio.Event().wait()  # runs until cancelled

    async def steady() -> None:
        await asyncio.Event().wait()

    supervisor.add("flaky-job", flaky)
    supervisor.add("steady-job", steady)
    supervisor.start()
    try:
        await asyncio.wait_for(running.wait(), 5)
        flaky_state, steady_state = (
            supervisor.states()["flaky-job"],
            supervisor.states()["steady-job"],
        )
        assert (flaky_state.status, flaky_state.restarts, flaky_state.last_error) == (
            "running",
            2,
            "KeyError",
        )
        assert (steady_state.status, steady_state.restarts) == ("running", 0)
        restarts = REGISTRY.get_sample_value(
            "teleconsult_background_job_restarts_total",
            {"job": "flaky-job", "error": "ConnectionRefusedError"},
        )
        assert restarts == 1
        assert (
            REGISTRY.get_sample_value("teleconsult_background_job_running", {"job": "flaky-job"})
            == 1
        )
    finally:
        await supervisor.stop()
    assert (
        REGISTRY.get_sample_value("teleconsult_background_job_running", {"job": "flaky-job"}) == 0
    )


async def test_a_job_that_ends_is_finished_not_restarted() -> None:
    supervisor = Supervisor(initial_backoff=0.01)
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    supervisor.add("one-off", once)
    supervisor.start()
    for _ in range(100):
        if supervisor.states()["one-off"].status == "finished":
            break
        await asyncio.sleep(0.01)
    await supervisor.stop()
    assert supervisor.states()["one-off"].status == "finished" and runs == [1]
