"""Keys every node of a cluster must share, kept in the database when settings give none.

One process on the embedded defaults makes its HS256 secret (join links, resume tokens,
playback links) and the key that encrypts stored credentials once, in its data folder
(:meth:`Settings.signing_secret`, :meth:`Settings.secrets_keys`). Nodes of a cluster (Redis
configured) must all sign and verify with the same secret and decrypt with the same key, so
there, when settings do not set them, the first node to start puts them in the ``shared_keys``
table and every node reads them from it (docs/cluster.md). A node that had made its own key in
its data folder before offers that one, so what it signed and encrypted stays valid; a data
folder's key that differs from the cluster's is still tried when decrypting.

The clinical signing key (Ed25519) follows the same rule: one key signs for the whole cluster,
kept in the database encrypted with the credential key. Every key that signs has its public
half recorded there (:func:`record_signing_key`): once another key signs instead (an operator
rotated ``TELECONSULT_CLINICAL_SIGNING_KEY``, or a node that signed alone with its data folder's
key joined a cluster that has one), it is published as retired (:func:`signing_keys`), so what
it signed stays verifiable.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from sqlalchemy import String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .database import Base, Database, UTCDateTime
from .secrets import SecretBox
from .settings import (
    CLINICAL_KEY_FILE,
    JWT_SECRET_FILE,
    SECRETS_KEY_FILE,
    Settings,
    new_clinical_signing_key,
    new_jwt_secret,
    new_secrets_key,
)

logger = logging.getLogger(__name__)

#: Name prefix of the public halves (PEM) of the clinical signing keys that have signed (the
#: name, from when only former keys of nodes were kept, stays for the rows stored since).
SIGNING_KEY_RECORD = "clinical-retired-key:"


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
    `settings` whose HS256 secret, credential keys and clinical signing key are the cluster's.

    Unchanged for a single process (no Redis) and for what settings set themselves.

    :param settings: This node's settings.
    """
    own_clinical_key = not (settings.clinical_signing_key or settings.clinical_signing_key_file)
    if not settings.redis_url or (
        settings.jwt_secret and settings.secrets_key and not own_clinical_key
    ):
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
        if own_clinical_key:
            box = SecretBox(settings.model_copy(update=update).secrets_keys())
            update["clinical_signing_key"] = await _clinical_key(settings, database, box)
            if not settings.secrets_key:
                logger.warning(
                    "the clinical signing key is kept in the database, encrypted with a key "
                    "kept beside it: set TELECONSULT_SECRETS_KEY (or "
                    "TELECONSULT_CLINICAL_SIGNING_KEY) on every node"
                )
    finally:
        await database.dispose()
    return settings.model_copy(update=update)


async def _clinical_key(settings: Settings, database: Database, box: SecretBox) -> str:
    """The cluster's clinical signing key (PEM); a different former key of this node retired."""
    own = settings.kept_secret(CLINICAL_KEY_FILE)
    stored = await shared_key(
        database, CLINICAL_KEY_FILE, lambda: box.encrypt(own or new_clinical_signing_key())
    )
    key = box.decrypt(stored)
    if own is not None and own != key:
        await record_signing_key(database, _public_pem(own))
        logger.warning(
            "this node's data folder has its own clinical signing key: the cluster's signs, "
            "the node's is published as retired so its signatures stay verifiable"
        )
    return key


def _public_pem(private_pem: str) -> str:
    """The public half (SubjectPublicKeyInfo PEM) of a PEM private key."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


async def record_signing_key(database: Database, public_pem: str) -> None:
    """
    Record the public half of a clinical signing key that signs (once, whoever is first).

    :param database: The cluster's database.
    :param public_pem: The key's public half (SubjectPublicKeyInfo PEM).
    """
    name = SIGNING_KEY_RECORD + hashlib.sha256(public_pem.encode()).hexdigest()[:32]
    await shared_key(database, name, lambda: public_pem)


async def signing_keys(database: Database) -> list[str]:
    """
    Public keys (PEM) of every clinical signing key that has signed, oldest first: the current
    one, keys operators rotated away from, and those of nodes that signed alone before they
    joined the cluster.

    Read at each call: a node that joins later adds its own while the others run.

    :param database: The cluster's database.
    """
    async with database.sessions() as session:
        rows = await session.scalars(
            select(SharedKey.value)
            .where(SharedKey.name.startswith(SIGNING_KEY_RECORD))
            .order_by(SharedKey.created_at)
        )
        return list(rows)
