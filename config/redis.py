"""The Redis connection used for Socket.IO fan-out and the room registry."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis

#: The longest any Redis call (connecting included) may take: a Redis that stopped answering
#: fails the call that needs it, with a coded error, instead of holding it forever.
REDIS_TIMEOUT_SECONDS = 2.0
#: Connections one client (one pool) may open. redis-py 8's asyncio pool allows 100 by default
#: and fails the 101st concurrent call ("Too many connections") instead of waiting: a burst of
#: joins (1,000 clients at 250/s through two nodes) made Socket.IO's manager fail publishes by
#: the hundred and joins end in ``internal_error``.
REDIS_MAX_CONNECTIONS = 1000


def redis_options() -> dict[str, Any]:
    """Options of every Redis connection of the server, Socket.IO's manager included: every
    call is bounded (redis-py's blocking pub/sub reads wait for the next message regardless)."""
    return {
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "health_check_interval": 15,
        "max_connections": REDIS_MAX_CONNECTIONS,
    }


def connect_redis(url: str) -> aioredis.Redis:
    """A Redis client for ``url`` that returns str values, every call with a timeout."""
    return aioredis.from_url(url, decode_responses=True, **redis_options())


def fanout_channel(url: str) -> str:
    """
    The pub/sub channel of Socket.IO's fan-out for the Redis at ``url``.

    Redis pub/sub ignores the database number: deployments (or test runs) sharing one Redis
    server on different databases get a channel each, ``teleconsult`` on database 0.
    """
    parts = urlsplit(url)
    in_query = parse_qs(parts.query).get("db", [])
    database = in_query[0] if in_query else "0" if parts.scheme == "unix" else parts.path.strip("/")
    database = database or "0"
    return "teleconsult" if database == "0" else f"teleconsult:{database}"
