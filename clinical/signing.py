"""Ed25519 signatures over a canonical JSON form of clinical documents.

The canonical form is JSON with keys sorted, no insignificant whitespace, UTF-8, and no floats
(decimals are written as strings by the documents themselves), so that any verifier that
rebuilds the bytes from the document gets exactly the bytes that were signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from config.settings import Settings, new_clinical_signing_key

logger = logging.getLogger(__name__)

ALGORITHM = "Ed25519"


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("canonical documents carry decimals as strings, not floats")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The canonical form of a document: the exact bytes that are signed.

    :param document: a JSON-ready mapping of strings, integers, booleans, null, lists and mappings.
    :raises ValueError: when the document holds a float.
    """
    _reject_floats(document)
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable id of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def verify(document: dict[str, Any], signature: str, public_key: Ed25519PublicKey) -> bool:
    """True when ``signature`` (base64) is the key's signature of the document's canonical form.

    :param document: the signed document, as stored or received.
    :param signature: the base64 signature.
    :param public_key: the server's public key (``GET /api/clinical/public-key``).
    """
    try:
        public_key.verify(base64.b64decode(signature, validate=True), canonical_bytes(document))
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its PEM text.

    :param pem: ``-----BEGIN PUBLIC KEY-----`` text.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature over a document's canonical form.

    :param value: the signature, base64.
    :param key_id: the id of the key that made it.
    """

    value: str
    key_id: str
    algorithm: str = ALGORITHM


class DocumentSigner:
    """The server's signing key for clinical documents.

    :param private_key: the Ed25519 private key.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentSigner:
        """The deployment's key: the PEM text of the settings, or their key file.

        :param settings: this node's settings (a cluster node's after :func:`with_shared_keys`).
        """
        if settings.clinical_signing_key:
            return cls.from_pem(settings.clinical_signing_key.encode())
        return cls.from_file(settings.clinical_key_path)

    @classmethod
    def from_pem(cls, pem: bytes, where: str = "the clinical signing key") -> DocumentSigner:
        """The signer of a PKCS#8 PEM Ed25519 private key.

        :param pem: the key's PEM bytes.
        :param where: what to name in the error when it is not an Ed25519 key.
        """
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{where} is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> DocumentSigner:
        """Load the PEM key at ``path``, generating it (mode 0600) the first time.

        :param path: where the PKCS#8 PEM private key lives.
        """
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process generated it first: use theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(new_clinical_signing_key())
                logger.info("clinical signing key generated", extra={"path": str(path)})
        return cls.from_pem(path.read_bytes(), str(path))

    def sign(self, document: dict[str, Any]) -> Signature:
        """Sign the canonical form of ``document``.

        :param document: the document to sign (see :func:`canonical_bytes`).
        """
        value = self._private_key.sign(canonical_bytes(document))
        return Signature(base64.b64encode(value).decode("ascii"), self.key_id)

    def verify(self, document: dict[str, Any], signature: str) -> bool:
        """True when ``signature`` is this key's signature of ``document``."""
        return verify(document, signature, self.public_key)

    def public_key_pem(self) -> str:
        """The public key, PEM (SubjectPublicKeyInfo)."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
