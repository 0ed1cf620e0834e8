"""HTTP access log without query strings: join links and playback URLs carry tokens there."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from signaling.addresses import client_address

logger = logging.getLogger("teleconsult.access")


class AccessLogger(AbstractAccessLogger):
    """Logs one structured line per request: method, path (never the query), status, duration."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "ms": round(time * 1000, 1),
                "remote": (
                    client_address(request) if isinstance(request, web.Request) else request.remote
                ),
            },
        )
