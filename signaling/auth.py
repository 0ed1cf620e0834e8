"""JWT verification and minting: tokens become identities once, at the edge."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import jwt

from config.settings import Settings
from rooms.errors import DomainError
from rooms.identity import Identity, Role

logger = logging.getLogger(__name__)

#: Claims every token must carry.
REQUIRED_CLAIMS = ["sub", "role", "hospital", "exp", "iss", "aud"]


class TokenMissing(DomainError):
    code, status = "token_missing", 401


class TokenInvalid(DomainError):
    code, status = "token_invalid", 401


class TokenExpired(DomainError):
    code, status = "token_expired", 401


class TokenNotYetValid(DomainError):
    code, status = "token_not_yet_valid", 401


class TokenVerifier(Protocol):
    """Turns a bearer token into an identity, or refuses it."""

    def verify(self, token: str) -> Identity:
        """The identity the token proves.

        :raises TokenInvalid, TokenExpired, TokenNotYetValid: when the token is refused.
        """


class JwtVerifier:
    """Verifies JWTs signed with one algorithm and one key (or a JWKS endpoint).

    Only the configured algorithm is accepted, which refuses ``alg: none`` and HS/RS confusion.

    :param algorithm: ``HS256``, ``RS256`` or ``ES256``.
    :param key: the HS256 secret or the PEM public key; ``None`` with a JWKS URL.
    :param issuer: the required ``iss``.
    :param audience: the required ``aud``.
    :param jwks_url: where to fetch signing keys by ``kid`` instead of a fixed key.
    """

    def __init__(
        self,
        algorithm: str,
        key: str | None,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
    ) -> None:
        if key is None and jwks_url is None:
            raise ValueError("a key or a JWKS URL is needed")
        self._algorithm = algorithm
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._jwks = jwt.PyJWKClient(jwks_url) if jwks_url else None

    def verify(self, token: str) -> Identity:
        try:
            key: Any = self._key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
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
    """

    def __init__(self, algorithm: str, key: str, issuer: str, audience: str) -> None:
        self._algorithm = algorithm
        self._key = key
        self._issuer = issuer
        self._audience = audience

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
        return jwt.encode(claims, self._key, algorithm=self._algorithm)


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
    return JwtVerifier(
        settings.jwt_algorithm, key, settings.jwt_issuer, settings.jwt_audience, settings.jwks_url
    )


def issuer_from_settings(settings: Settings) -> TokenIssuer | None:
    """The token issuer, or ``None`` when this deployment holds no private key."""
    if settings.jwt_algorithm == "HS256":
        key = settings.signing_secret()
    elif settings.jwt_private_key_file is not None:
        key = settings.jwt_private_key_file.read_text()
    else:
        return None
    return TokenIssuer(settings.jwt_algorithm, key, settings.jwt_issuer, settings.jwt_audience)
