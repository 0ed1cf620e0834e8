"""What signed clinical documents share in REST answers, and the key that verifies them."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from clinical.signing import ALGORITHM, key_id, load_public_key
from config.keys import signing_keys
from signaling.api.declare import ApiRoutes
from signaling.context import services

#: Why a signed document is amended, or signed despite its safety findings.
Reason = Field(min_length=1, max_length=1000)

CANONICAL_FORM = (
    "JSON of signed_document, keys sorted, no whitespace (separators ',' and ':'), UTF-8, "
    f"non-ASCII unescaped; decimals are strings. {ALGORITHM} over those bytes; signature base64."
)


class PersonOut(BaseModel):
    """A person named in a document."""

    sub: str
    name: str


class SignatureOut(BaseModel):
    """An Ed25519 signature over the document's canonical JSON (base64)."""

    algorithm: str
    key_id: str
    value: str


class DeliveryOut(BaseModel):
    """Where the delivery to the hospital record store stands."""

    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    delivered_at: str | None


class VerifyingKeyOut(BaseModel):
    """A public key that verifies signed documents, by the key id signatures name."""

    key_id: str
    public_key_pem: str
    retired: bool


class PublicKeyOut(BaseModel):
    """The server's clinical signing key, and every key that verifies its documents."""

    algorithm: str
    key_id: str
    public_key_pem: str
    canonical_form: str
    keys: list[VerifyingKeyOut]


routes = ApiRoutes("documents")


@routes.get(
    "/api/clinical/public-key",
    response=PublicKeyOut,
    description="the key and the canonical form",
    bearer=False,
)
async def public_key(request: web.Request) -> PublicKeyOut:
    """The Ed25519 key that signs notes and prescriptions now, and with it every key that
    signed before: rotated away from, or a node's own before it joined the cluster (no token)."""
    signer = services(request).clinical.signer
    current = VerifyingKeyOut(
        key_id=signer.key_id, public_key_pem=signer.public_key_pem(), retired=False
    )
    retired = [
        VerifyingKeyOut(key_id=key_id(load_public_key(pem)), public_key_pem=pem, retired=True)
        for pem in await signing_keys(services(request).database)
    ]
    return PublicKeyOut(
        algorithm=ALGORITHM,
        key_id=signer.key_id,
        public_key_pem=signer.public_key_pem(),
        canonical_form=CANONICAL_FORM,
        keys=[current, *(key for key in retired if key.key_id != signer.key_id)],
    )
