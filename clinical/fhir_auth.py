"""How the record store authenticates to a hospital's FHIR server.

None, a static bearer token, or SMART Backend Services: OAuth2 client credentials with a
``private_key_jwt`` client assertion (RS384 or ES384), the access token cached until shortly
before it expires. Tokens and keys are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

logger = logging.getLogger(__name__)

#: The client assertion type of SMART Backend Services (RFC 7523).
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long a client assertion is valid; SMART allows at most five minutes.
ASSERTION_LIFETIME_SECONDS = 300
#: A cached token is renewed this long (at most a tenth of its lifetime) before it expires.
EXPIRY_MARGIN_SECONDS = 30.0


class AuthFailed(Exception):
    """No access token could be obtained (the message names no token or key)."""


class FhirAuth(Protocol):
    """Gives the ``Authorization`` header of requests to one FHIR server."""

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """The headers that authenticate the next request (empty when none are needed)."""

    def forget(self) -> None:
        """Drop a cached token the server refused, so the next request gets a new one."""


class NoAuth:
    """A FHIR server that wants no credentials."""

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """No headers."""
        return {}

    def forget(self) -> None:
        """Nothing is cached."""


class BearerAuth:
    """A static bearer token issued to us by the hospital.

    :param token: the token.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """``Authorization: Bearer <token>``."""
        return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        """A static token cannot be renewed."""


class SmartBackendAuth:
    """SMART Backend Services: client credentials with a signed JWT assertion.

    :param token_url: the authorisation server's token endpoint (the assertion's ``aud``).
    :param client_id: our registered client id (the assertion's ``iss`` and ``sub``).
    :param private_key_pem: the PEM private key registered with the server (RSA or EC P-384).
    :param key_id: the ``kid`` of the key in our registered JWK set (``None``: no ``kid``).
    :param scope: the scopes requested, e.g. ``system/*.write``.
    :raises ValueError: when the key is neither RSA nor EC.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: str,
        key_id: str | None,
        scope: str,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        key = load_pem_private_key(private_key_pem.encode(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise ValueError("SMART Backend Services needs an RSA or EC private key")
        self._key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = key
        self._algorithm = "ES384" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS384"
        self._key_id = key_id
        self._scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SmartBackendAuth(token_url={self._token_url!r}, client_id={self._client_id!r})"

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": self._token_url,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        }
        return jwt.encode(
            claims,
            self._key,
            algorithm=self._algorithm,
            headers={"typ": "JWT"} | ({"kid": self._key_id} if self._key_id else {}),
        )

    async def headers(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """``Authorization: Bearer <access token>``, requesting a token when none is valid.

        :raises AuthFailed: when the token endpoint does not grant one.
        """
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                await self._request_token(http)
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    async def _request_token(self, http: aiohttp.ClientSession) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self._assertion(),
        }
        try:
            async with http.post(
                self._token_url, data=form, headers={"Accept": "application/json"}
            ) as response:
                if response.status != 200:
                    raise AuthFailed(f"token endpoint answered {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthFailed(f"token endpoint unreachable: {type(exc).__name__}") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailed("token endpoint answered without an access_token")
        lifetime = float(body.get("expires_in", ASSERTION_LIFETIME_SECONDS))
        self._token = token
        self._expires_at = time.monotonic() + lifetime - min(EXPIRY_MARGIN_SECONDS, lifetime / 10)
        logger.info("FHIR access token obtained", extra={"expires_in": lifetime})

    def forget(self) -> None:
        """Drop the cached token."""
        self._token = None
        self._expires_at = 0.0


@dataclass(frozen=True, slots=True)
class BearerSpec:
    """A static bearer token, as a hospital's settings give it."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SmartSpec:
    """SMART Backend Services credentials, as a hospital's settings give them."""

    token_url: str
    client_id: str
    private_key_pem: str = field(repr=False)
    key_id: str | None = None
    scope: str = "system/*.write"


#: How a FHIR server is reached: no credentials (``None``), a bearer token, or SMART.
AuthSpec = BearerSpec | SmartSpec | None


def auth_from(spec: AuthSpec) -> FhirAuth:
    """The authentication of ``spec`` (a new token cache for SMART)."""
    if isinstance(spec, BearerSpec):
        return BearerAuth(spec.token)
    if isinstance(spec, SmartSpec):
        return SmartBackendAuth(
            spec.token_url, spec.client_id, spec.private_key_pem, spec.key_id, spec.scope
        )
    return NoAuth()
