"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import migrations.schema  # noqa: F401
from config.database import Base, create_engine
from migrations.runner import alembic_config, upgrade

_Found = TypeVar("_Found")


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _outbox_names(connection: Connection) -> dict[str, list[str]]:
    """Each outbox-looking table's name with the names of its indexes and unique constraints."""
    inspector = inspect(connection)
    return {
        table: sorted(
            {index["name"] or "" for index in inspector.get_indexes(table)}
            | {unique["name"] or "" for unique in inspector.get_unique_constraints(table)}
        )
        for table in inspector.get_table_names()
        if "outbox" in table
    }


async def _inspect(database_url: str, look: Callable[[Connection], _Found]) -> _Found:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(upgrade, database_url)  # applying twice changes nothing
    assert await _inspect(database_url, _differences) == []


async def test_the_outbox_rename_goes_down_and_up_again(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0008")
    names = await _inspect(database_url, _outbox_names)
    assert list(names) == ["clinical_outbox"]
    assert len(names["clinical_outbox"]) == 6  # five indexes and the idempotency key
    assert all("clinical_outbox" in name for name in names["clinical_outbox"])

    await asyncio.to_thread(upgrade, database_url)
    names = await _inspect(database_url, _outbox_names)
    assert list(names) == ["outbox_entries"]
    assert all("outbox_entries" in name for name in names["outbox_entries"])
    assert await _inspect(database_url, _differences) == []
