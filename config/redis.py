"""The Redis connection used for Socket.IO fan-out and the room registry."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect_redis(url: str) -> aioredis.Redis:
    """A Redis client for ``url`` that returns str values."""
    return aioredis.from_url(url, decode_responses=True)
