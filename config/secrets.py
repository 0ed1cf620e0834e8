"""Secrets the server stores for others (webhook signing secrets, FHIR credentials): encrypted
at rest with Fernet (AES-128-CBC with HMAC-SHA256) under keys from the settings.

The API never returns a stored secret; callers keep the ciphertext in the database and decrypt
only at the moment of use.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config.settings import Settings


class SecretUnreadable(Exception):
    """A stored secret was encrypted under a key this deployment no longer has."""


class SecretBox:
    """Encrypts and decrypts stored secrets; the first key encrypts, every key decrypts."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of this deployment (``TELECONSULT_SECRETS_KEY`` or the data_dir key)."""
        return cls(settings.secrets_keys())

    def encrypt(self, plain: str) -> str:
        """The ciphertext (URL-safe text) of ``plain``."""
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plain text of a ciphertext made by :meth:`encrypt` under any current key."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "the stored secret cannot be decrypted with the current keys"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """The same secret re-encrypted under the first (current) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "the stored secret cannot be decrypted with the current keys"
            ) from exc
