"""Which events cross Redis: one meant for a connection of this server goes straight to it; the
consult's room events reach every server. (Every message on the Socket.IO channel is decoded by
every server of the cluster: a deployment of N servers pays N times for each.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from config.redis import fanout_channel
from config.settings import Settings
from tests.integration.live import admitted_visit, serving

pytestmark = pytest.mark.redis

#: A grace period whose resume tokens come every half second (a third of it).
GRACE = 1.5


@contextlib.asynccontextmanager
async def fanned_out(redis_url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The Socket.IO messages published on the deployment's channel meanwhile."""
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(fanout_channel(redis_url))
    seen: list[dict[str, Any]] = []

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                with contextlib.suppress(ValueError):
                    seen.append(json.loads(message["data"]))

    listening = asyncio.create_task(listen())
    try:
        yield seen
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await pubsub.aclose()
        await client.aclose()


async def test_a_participants_own_events_go_straight_to_them_and_room_events_to_all_servers(
    sqlite_url: str,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    clients: Callable[..., Any],
) -> None:
    settings = settings_factory(
        database_url=sqlite_url, redis_url=redis_url, reconnect_grace_seconds=GRACE
    )
    async with serving(settings) as server, fanned_out(redis_url) as published:
        _, doctor, patient = await admitted_visit(server, clients)
        assert (await patient.next("resume_token"))["resume_token"]
        assert (await doctor.call("chat", {"text": "Good morning"}))["ok"]
        await patient.next("chat_message")
        await asyncio.sleep(0.2)
    events = [m.get("event") for m in published if m.get("method") == "emit"]
    assert "chat_message" in events, "a room's event must reach the other servers"
    assert "resume_token" not in events, "a connection's own event crossed Redis"
