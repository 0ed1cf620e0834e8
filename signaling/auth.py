"""JWT verification and minting: tokens become identities once, at the edge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from config.settings import Settings
from rooms.errors import TokenExpired, TokenInvalid, TokenNotYetValid
from rooms.identity import Identity, Role

logger = logging.getLogger(__name__)

#: Claims every token must carry.
REQUIRED_CLAIMS = ["sub", "role", "hospital", "exp", "iss", "aud"]


class JwksKeySet:
    """The identity provider's signing keys from its JWKS endpoint, kept fresh in the background.

    Verification never waits on the network: it uses the keys fetched so far, and a token signed
    with a key not seen yet is refused and makes the next refresh come sooner.

    :param url: the JWKS endpoint.
    :param refresh_seconds: how often the keys are fetched again.
    :param retry_seconds: how soon after a failure or an unknown ``kid`` they are fetched again.
    """

    def __init__(self, url: str, refresh_seconds: float = 300, retry_seconds: float = 15) -> None:
        self.url = url
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._keys: dict[str, Any] = {}
        self._wanted = asyncio.Event()

    def key(self, kid: str | None) -> Any:
        """The public key named ``kid``.

        :raises TokenInvalid: when no such key has been fetched.
        """
        key = self._keys.get(kid or "")
        if key is None:
            self._wanted.set()
            raise TokenInvalid("The token is signed with an unknown key")
        return key

    async def refresh(self, session: aiohttp.ClientSession) -> None:
        """Fetch the keys now (raises when the endpoint fails or answers nonsense)."""
        async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        key_set = jwt.PyJWKSet.from_dict(document)
        self._keys = {jwk.key_id or "": jwk.key for jwk in key_set.keys}
        logger.info("signing keys fetched", extra={"keys": len(self._keys)})

    @property
    def loaded(self) -> bool:
        """True once keys have been fetched (readiness)."""
        return bool(self._keys)

    async def keep_fresh(self) -> None:
        """Refresh forever: on schedule, after a failure, and when an unknown ``kid`` shows up."""
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            while True:
                started = loop.time()
                try:
                    await self.refresh(session)
                    pause = self._refresh_seconds
                except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as exc:
                    logger.warning("fetching signing keys failed", extra={"error": repr(exc)})
                    pause = self._retry_seconds
                self._wanted.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), pause)
                # An unknown kid asks for keys now, but not more often than every retry_seconds.
                await asyncio.sleep(max(0.0, started + self._retry_seconds - loop.time()))


class JwtVerifier:
    """Verifies JWTs signed with one algorithm and one key (or the keys of a JWKS endpoint).

    Only the configured algorithm is accepted, which refuses ``alg: none`` and HS/RS confusion.

    :param algorithm: ``HS256``, ``RS256`` or ``ES256``.
    :param key: the HS256 secret or the PEM public key; ``None`` with a JWKS key set.
    :param issuer: the required ``iss``.
    :param audience: the required ``aud``.
    :param jwks: the identity provider's keys, chosen by the token's ``kid``.
    """

    def __init__(
        self,
        algorithm: str,
        key: str | None,
        issuer: str,
        audience: str,
        jwks: JwksKeySet | None = None,
    ) -> None:
        if key is None and jwks is None:
            raise ValueError("a key or a JWKS key set is needed")
        self._algorithm = algorithm
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self.jwks = jwks

    def verify(self, token: str) -> Identity:
        try:
            key: Any = self._key
            if self.jwks is not None:
                key = self.jwks.key(jwt.get_unverified_header(token).get("kid"))
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("The token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenNotYetValid("The token is not valid yet") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            logger.info("token refused", extra={"reason": type(exc).__name__})
            raise TokenInvalid("The token is not valid") from exc
        except TokenInvalid:
            logger.info("token refused", extra={"reason": "unknown signing key"})
            raise
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise TokenInvalid("The token names an unknown role") from exc
        consult = claims.get("consult")
        return Identity(
            sub=str(claims["sub"]),
            name=str(claims.get("name") or claims["sub"]),
            role=role,
            hospital=str(claims["hospital"]),
            consult_id=str(consult) if consult else None,
        )


class TokenIssuer:
    """Mints tokens with the deployment's signing key (demos, tests and join links).

    :param algorithm: ``HS256``, ``RS256`` or ``ES256``.
    :param key: the HS256 secret or the PEM private key.
    :param issuer: the ``iss`` claim.
    :param audience: the ``aud`` claim.
    :param key_id: the ``kid`` header naming the key in the identity provider's JWKS.
    """

    def __init__(
        self, algorithm: str, key: str, issuer: str, audience: str, key_id: str | None = None
    ) -> None:
        self._algorithm = algorithm
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._headers = {"kid": key_id} if key_id else None

    def mint(self, identity: Identity, ttl_seconds: int, *, not_before: int | None = None) -> str:
        """A signed token for ``identity`` valid for ``ttl_seconds``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": identity.sub,
            "name": identity.name,
            "role": identity.role.value,
            "hospital": identity.hospital,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": not_before if not_before is not None else now,
            "exp": now + ttl_seconds,
        }
        if identity.consult_id:
            claims["consult"] = identity.consult_id
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=self._headers)


def _read(path: Path | None, what: str) -> str:
    if path is None:
        raise ValueError(f"TELECONSULT_{what} is needed for RS256/ES256")
    return path.read_text()


def verifier_from_settings(settings: Settings) -> JwtVerifier:
    """The verifier the settings describe."""
    if settings.jwt_algorithm == "HS256":
        key: str | None = settings.signing_secret()
    elif settings.jwks_url:
        key = None
    else:
        key = _read(settings.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE")
    jwks = JwksKeySet(settings.jwks_url) if settings.jwks_url else None
    return JwtVerifier(
        settings.jwt_algorithm, key, settings.jwt_issuer, settings.jwt_audience, jwks
    )


def issuer_from_settings(settings: Settings) -> TokenIssuer | None:
    """The token issuer, or ``None`` when this deployment holds no private key."""
    if settings.jwt_algorithm == "HS256":
        key = settings.signing_secret()
    elif settings.jwt_private_key_file is not None:
        key = settings.jwt_private_key_file.read_text()
    else:
        return None
    return TokenIssuer(
        settings.jwt_algorithm,
        key,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.jwt_key_id,
    )
