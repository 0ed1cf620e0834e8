"""Prometheus metrics of the edge, exposed at ``/metrics``."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

SOCKET_CONNECTIONS = Gauge(
    "teleconsult_socket_connections", "Socket.IO connections open on this process"
)
REFUSALS = Counter(
    "teleconsult_refusals_total", "Requests and events refused, by error code", ["code"]
)
LIMITER_FALLBACKS = Counter(
    "teleconsult_limiter_fallbacks_total",
    "Times Redis failed the rate limiter, which then counted in the process for a while",
)
CONSULTS_SCHEDULED = Counter("teleconsult_consults_scheduled_total", "Consults scheduled")
JOIN_SECONDS = Histogram(
    "teleconsult_join_seconds",
    "Server-side time of a Socket.IO join, from the event to its acknowledgement",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENT_LOOP_LAG_SECONDS = Histogram(
    "teleconsult_event_loop_lag_seconds",
    "How late the event loop ran a timer: every request, event and packet waits this long",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

JOB_RUNNING = Gauge(
    "teleconsult_background_job_running",
    "1 while a supervised background job runs, 0 while it backs off after a failure",
    ["job"],
)
JOB_RESTARTS = Counter(
    "teleconsult_background_job_restarts_total",
    "Failures of a supervised background job (each followed by a restart), by exception class",
    ["job", "error"],
)

#: How often :func:`watch_event_loop_lag` samples the event loop.
LAG_SAMPLE_SECONDS = 0.5


async def watch_event_loop_lag() -> None:
    """Sample the event loop's latency into ``EVENT_LOOP_LAG_SECONDS`` until cancelled.

    Forwarded media shares the loop with signaling: when the media load leaves the loop late,
    every join and offer waits too, and this is where an operator sees it.
    """
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_SAMPLE_SECONDS
        await asyncio.sleep(LAG_SAMPLE_SECONDS)
        EVENT_LOOP_LAG_SECONDS.observe(max(0.0, loop.time() - due))
