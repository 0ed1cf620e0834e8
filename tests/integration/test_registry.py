"""The room registry: the same behaviour in one process and across processes through Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from config.redis import connect_redis
from config.settings import Settings
from migrations.runner import upgrade
from rooms.registry import LocalRegistry, Presence, RedisRegistry, RoomRegistry
from signaling.app import create_app
from signaling.auth import issuer_from_settings
from tests.integration.live import LiveServer, join_token, participant_id


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def registry(
    request: pytest.FixtureRequest,
) -> AsyncIterator[RoomRegistry]:
    if request.param == "local":
        yield LocalRegistry()
        return
    registry = RedisRegistry(connect_redis(request.getfixturevalue("redis_url")), prefix="test")
    yield registry
    await registry.close()


async def test_presence_is_kept_per_consult(registry: RoomRegistry) -> None:
    await registry.set_presence("c1", "p1", Presence("waiting", "sid-1"))
    await registry.set_presence("c1", "p2", Presence("joined", "sid-2"))
    await registry.set_presence("c2", "p3", Presence("joined", "sid-3"))
    assert await registry.presence("c1") == {
        "p1": Presence("waiting", "sid-1"),
        "p2": Presence("joined", "sid-2"),
    }
    await registry.set_presence("c1", "p2", Presence("joined", "sid-2").with_muted("camera", True))
    assert (await registry.presence("c1"))["p2"].muted == {"microphone": False, "camera": True}
    await registry.clear_presence("c1", "p1")
    assert set(await registry.presence("c1")) == {"p2"}
    await registry.clear_consult("c1")
    assert await registry.presence("c1") == {}
    assert set(await registry.presence("c2")) == {"p3"}


async def test_leaving_clears_only_the_connection_that_still_holds_the_participant(
    registry: RoomRegistry,
) -> None:
    await registry.set_presence("c1", "p1", Presence("joined", "sid-old"))
    await registry.set_presence("c1", "p1", Presence("joined", "sid-new"))  # rejoined elsewhere
    await registry.clear_presence("c1", "p1", "sid-old")  # the old tab's late departure
    assert (await registry.presence("c1"))["p1"].sid == "sid-new"
    await registry.clear_presence("c1", "p1", "sid-new")
    await registry.clear_presence("c1", "p1", "sid-new")  # leaving twice is harmless
    assert await registry.presence("c1") == {}


async def test_refreshing_restores_lost_presence_but_never_overrides_a_newer_connection(
    registry: RoomRegistry,
) -> None:
    await registry.set_presence("c1", "p2", Presence("joined", "sid-elsewhere"))
    held = {
        "p1": Presence("joined", "sid-1").with_muted("camera", True),
        "p2": Presence("joined", "sid-stale"),
    }
    await registry.refresh_presence("c1", held)
    present = await registry.presence("c1")
    assert present["p1"] == held["p1"]  # restored as this process holds it
    assert present["p2"].sid == "sid-elsewhere"


@pytest.mark.redis
async def test_a_presence_nobody_asserts_again_expires(redis_url: str) -> None:
    registry = RedisRegistry(connect_redis(redis_url), prefix="test", presence_ttl_seconds=1)
    try:
        await registry.set_presence("c1", "ghost", Presence("joined", "sid-gone"))
        await registry.set_presence("c1", "p1", Presence("joined", "sid-1"))
        assert set(await registry.presence("c1")) == {"ghost", "p1"}
        for _ in range(3):  # p1's process keeps asserting it; nobody asserts the ghost
            await asyncio.sleep(0.5)
            await registry.refresh_presence("c1", {"p1": Presence("joined", "sid-1")})
        assert set(await registry.presence("c1")) == {"p1"}
        await asyncio.sleep(2.2)  # and once nobody asserts anything, the whole consult goes
        assert await registry.presence("c1") == {}
        observer = connect_redis(redis_url)
        assert await observer.exists("test:presence:c1") == 0
        await observer.aclose()
    finally:
        await registry.close()


@pytest.mark.redis
async def test_a_server_on_redis_admits_a_patient(
    redis_url: str,
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    clients: Callable[..., Any],
) -> None:
    """The whole lobby story with Socket.IO fan-out and the registry in the real Redis."""
    await asyncio.to_thread(upgrade, sqlite_url)
    settings = settings_factory(database_url=sqlite_url, redis_url=redis_url)
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            issuer = issuer_from_settings(settings)
            assert issuer is not None
            live = LiveServer(
                str(server.make_url("")).rstrip("/"), settings, issuer, http, server.app
            )
            consult = await live.schedule_visit()
            doctor = await clients(live.url, live.token_of(consult, "dr-wang"))
            assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
            patient = await clients(live.url, join_token(consult, "pt-li"))
            assert (await patient.call("join", {"consult_id": consult["id"]}))["status"] == "lobby"
            assert (await doctor.next("lobby"))["waiting"][0]["name"] == "Li Hua"
            await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
            assert (await patient.next("admitted"))["consult"]["id"] == consult["id"]
            async with http.get(f"{live.url}/readyz") as response:
                assert (await response.json())["checks"] == {"database": "ok", "redis": "ok"}
            for client in (doctor, patient):
                await client.close()
    finally:
        await server.close()


async def test_a_burst_of_registry_calls_waits_for_no_free_connection(redis_url: str) -> None:
    """Hundreds of presence reads at once (a burst of joins) are all answered: the client's
    pool must not refuse the 101st concurrent call, as redis-py's default pool does."""
    client = connect_redis(redis_url)
    registry = RedisRegistry(client, prefix="burst")
    try:
        answers = await asyncio.gather(*(registry.presence(f"c{n}") for n in range(300)))
        assert answers == [{}] * 300
    finally:
        await registry.close()
