"""Fixtures of the integration tests: a ready database (SQLite and PostgreSQL) and a Redis client.

The URLs come from tests/conftest.py (``database_url``, ``redis_url``); these fixtures open them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from config.database import Base, Database
from config.redis import connect_redis

# Packages whose ``models`` module declares tables on config.database.Base.
MODEL_PACKAGES = ("rooms", "rooms.webhooks", "recordings", "clinical", "outbox")


def import_all_models() -> None:
    """Import every ``<package>.models`` that exists, so Base.metadata knows every table."""
    for package in MODEL_PACKAGES:
        name = f"{package}.models"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh database (once SQLite, once PostgreSQL) with every table created.

    Tables come from the models' metadata, not from Alembic: the migrations have tests of their own.
    """
    import_all_models()
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client (str values) on the test's own, empty Redis database."""
    client = connect_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# The live server and Socket.IO client fixtures live beside the helpers they use.
from tests.integration.live import clients, live_server  # noqa: E402, F401
