"""Keys every node of a cluster must share, kept in the database when settings give none.

One process on the embedded defaults makes its HS256 secret (join links, resume tokens,
playback links) and the key that encrypts stored credentials once, in its data folder
(:meth:`Settings.signing_secret`, :meth:`Settings.secrets_keys`). Nodes of a cluster (Redis
configured) must all sign and verify with the same secret and decrypt with the same key, so
there, when settings do not set them, the first node to start puts them in the ``shared_keys``
table and every node reads them from it (docs/cluster.md). A node that had made its own key in
its data folder before offers that one, so what it signed and encrypted stays valid; a data
folder's key that differs from the cluster's is still tried when decrypting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .database import Base, Database, UTCDateTime
from .settings import (
    JWT_SECRET_FILE,
    SECRETS_KEY_FILE,
    Settings,
    new_jwt_secret,
    new_secrets_key,
)

logger = logging.getLogger(__name__)


class SharedKey(Base):
    """A key the cluster's nodes share, by name."""

    __tablename__ = "shared_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=lambda: datetime.now(UTC))


async def shared_key(database: Database, name: str, make: Callable[[], str]) -> str:
    """
    The cluster's key `name`: the stored one, or `make()`'s, stored by whichever node is first.

    :param database: The cluster's database.
    :param name: The key's name.
    :param make: Makes the key when none is stored yet.
    """
    async with database.sessions() as session:
        stored = await session.scalar(select(SharedKey.value).where(SharedKey.name == name))
    if stored is not None:
        return stored
    try:
        async with database.transaction() as session:
            session.add(SharedKey(name=name, value=make()))
    except IntegrityError:
        pass  # another node stored it first: theirs is the cluster's
    async with database.sessions() as session:
        value = await session.scalar(select(SharedKey.value).where(SharedKey.name == name))
    assert value is not None
    return value


async def with_shared_keys(settings: Settings) -> Settings:
    """
    `settings` whose HS256 secret and credential keys are the cluster's.

    Unchanged for a single process (no Redis) and for what settings set themselves.

    :param settings: This node's settings.
    """
    if not settings.redis_url or (settings.jwt_secret and settings.secrets_key):
        return settings
    database = Database(settings.effective_database_url)
    update: dict[str, str] = {}
    try:
        if not settings.jwt_secret:
            own = settings.kept_secret(JWT_SECRET_FILE)
            update["jwt_secret"] = await shared_key(
                database, JWT_SECRET_FILE, lambda: own or new_jwt_secret()
            )
            if own is not None and update["jwt_secret"] != own:
                logger.warning("this node's data folder has its own secret: the cluster's is used")
        if not settings.secrets_key:
            own_key = settings.kept_secret(SECRETS_KEY_FILE)
            key = await shared_key(database, SECRETS_KEY_FILE, lambda: own_key or new_secrets_key())
            update["secrets_key"] = key if own_key in (None, key) else f"{key},{own_key}"
            logger.warning(
                "the key of stored credentials is kept in the database beside them: "
                "set TELECONSULT_SECRETS_KEY on every node"
            )
    finally:
        await database.dispose()
    return settings.model_copy(update=update)
