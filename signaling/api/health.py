"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from signaling.api.declare import ApiRoutes
from signaling.context import services

logger = logging.getLogger(__name__)
routes = ApiRoutes("health")

Check = Literal["ok", "unavailable"]


class LivenessOut(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class JobOut(BaseModel):
    """A supervised background job: running, backing off after a failure, or finished."""

    status: Literal["running", "backing_off", "finished"]
    restarts: int
    last_error: str | None = Field(description="the class of the last exception it raised")


class NodeOut(BaseModel):
    """This process as a node of the cluster, and what it holds (counts only: consult ids are
    not for an unauthenticated probe)."""

    node_id: str
    url: str
    region: str | None
    consults: int = Field(
        description="consults whose media it hosts or whose participants are seated there"
    )
    publishers: int = Field(description="participants publishing to it")
    forwarded: int = Field(description="tracks it forwards to subscribers")
    cpu: float = Field(description="its process's CPU over the last heartbeat period, in cores")


class ReadinessOut(BaseModel):
    """Whether the process can reach what it needs, each check's outcome, the state of its
    background jobs (reported, not part of readiness: a job backing off retries by itself), and
    what it holds as a node of the cluster."""

    status: Check
    checks: dict[str, Check]
    jobs: dict[str, JobOut]
    node: NodeOut


@routes.get("/healthz", response=LivenessOut, description="up", bearer=False)
async def healthz(request: web.Request) -> LivenessOut:
    """Liveness: the process is up and serving."""
    return LivenessOut(status="ok")


@routes.get(
    "/readyz",
    response=ReadinessOut,
    description="ready",
    other_statuses={503: "not ready: the same body, naming what is unavailable"},
    bearer=False,
)
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the process reaches its database (and Redis, when configured)."""
    svc = services(request)
    checks: dict[str, Check] = {}
    try:
        async with svc.database.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("database not ready", extra={"error": type(exc).__name__})
        checks["database"] = "unavailable"
    if svc.verifier.jwks:
        loaded = all(key_set.loaded for key_set in svc.verifier.jwks)
        checks["signing_keys"] = "ok" if loaded else "unavailable"
    redis_client = svc.redis
    if redis_client is not None:
        try:
            await redis_client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            logger.warning("redis not ready", extra={"error": type(exc).__name__})
            checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    jobs = {
        name: JobOut(status=job.status, restarts=job.restarts, last_error=job.last_error)
        for name, job in svc.supervisor.states().items()
    }
    me = svc.cluster.me
    load = svc.cluster.load()
    node = NodeOut(
        node_id=me.node_id,
        url=me.url,
        region=me.region,
        consults=load.consults,
        publishers=load.publishers,
        forwarded=load.forwarded,
        cpu=load.cpu,
    )
    out = ReadinessOut(status="ok" if ready else "unavailable", checks=checks, jobs=jobs, node=node)
    return web.json_response(text=out.model_dump_json(), status=200 if ready else 503)


@routes.get(
    "/metrics",
    description="the metrics, in Prometheus' text format",
    bearer=False,
)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of this process."""
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
