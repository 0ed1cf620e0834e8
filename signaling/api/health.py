"""Liveness, readiness and metrics."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from signaling.context import services

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """The process can reach its database (and Redis, when configured)."""
    svc = services(request)
    checks: dict[str, str] = {}
    try:
        async with svc.database.sessions() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("database not ready", extra={"error": type(exc).__name__})
        checks["database"] = "unavailable"
    if svc.verifier.jwks is not None:
        checks["signing_keys"] = "ok" if svc.verifier.jwks.loaded else "unavailable"
    redis_client = svc.redis
    if redis_client is not None:
        try:
            await redis_client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            logger.warning("redis not ready", extra={"error": type(exc).__name__})
            checks["redis"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of this process."""
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
