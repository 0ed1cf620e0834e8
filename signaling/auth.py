"""JWT verification and minting: tokens become identities once, at the edge.

Two kinds of token (docs/security.md): identity tokens, from the identity providers this
deployment trusts, each for the hospitals it may assert; and join links, minted by this server
(``purpose: "join"``) for one participant of one consult.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from config.issuers import (
    ConfigurationError,
    TrustedIssuer,
    check_hs256_secret,
    load_trusted_issuers,
)
from config.settings import Settings
from rooms.errors import IssuerNotTrusted, TokenExpired, TokenInvalid, TokenNotYetValid
from rooms.hospitals import HospitalDirectory
from rooms.identity import Identity, Role

logger = logging.getLogger(__name__)

#: Claims every token must carry.
REQUIRED_CLAIMS = ["sub", "role", "hospital", "exp", "iss", "aud"]
#: The ``purpose`` claim of a join link.
JOIN_PURPOSE = "join"
#: The JWK key type each accepted algorithm needs.
KEY_TYPES = {"RS256": "RSA", "ES256": "EC", "HS256": "oct"}


class JwksKeySet:
    """The identity provider's signing keys from its JWKS endpoint, kept fresh in the background.

    Verification never waits on the network: it uses the keys fetched so far, and a token signed
    with a key not seen yet is refused and makes the next refresh come sooner. A key the
    algorithm cannot use (another type, malformed) is skipped with a log line; a document without
    one usable key keeps the keys fetched before.

    :param url: the JWKS endpoint.
    :param algorithm: the algorithm the keys are for (``RS256`` or ``ES256``).
    :param refresh_seconds: how often the keys are fetched again.
    :param retry_seconds: how soon after a failure or an unknown ``kid`` they are fetched again.
    """

    def __init__(
        self,
        url: str,
        algorithm: str = "RS256",
        refresh_seconds: float = 300,
        retry_seconds: float = 15,
    ) -> None:
        self.url = url
        self._key_type = KEY_TYPES[algorithm]
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
        """Fetch the keys now (raises when the endpoint fails or has no usable key)."""
        async with session.get(self.url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        self._keys = self._usable_keys(document)
        logger.info("signing keys fetched", extra={"keys": len(self._keys)})

    def _usable_keys(self, document: Any) -> dict[str, Any]:
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS document has no list of keys")
        keys: dict[str, Any] = {}
        for index, entry in enumerate(entries):
            try:
                jwk = jwt.PyJWK(entry)
            except Exception as exc:  # any malformed entry: skip it, keep the others
                logger.warning(
                    "signing key skipped", extra={"index": index, "reason": type(exc).__name__}
                )
                continue
            if jwk.key_type != self._key_type:
                logger.warning(
                    "signing key skipped",
                    extra={"index": index, "reason": f"key type {jwk.key_type}"},
                )
                continue
            keys[jwk.key_id or ""] = jwk.key
        if not keys:
            raise ValueError(f"the JWKS document has no usable {self._key_type} key")
        return keys

    @property
    def loaded(self) -> bool:
        """True once keys have been fetched (readiness)."""
        return bool(self._keys)

    async def keep_fresh(self) -> None:
        """Refresh forever: on schedule, after a failure, and when an unknown ``kid`` shows up.

        No failure of one refresh stops it: the keys fetched before stay in use.
        """
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            while True:
                started = loop.time()
                try:
                    await self.refresh(session)
                    pause = self._refresh_seconds
                except Exception as exc:
                    logger.warning(
                        "fetching signing keys failed",
                        extra={"url": self.url, "error": type(exc).__name__, "detail": str(exc)},
                    )
                    pause = self._retry_seconds
                self._wanted.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), pause)
                # An unknown kid asks for keys now, but not more often than every retry_seconds.
                await asyncio.sleep(max(0.0, started + self._retry_seconds - loop.time()))


def _refused(reason: str) -> TokenInvalid:
    logger.info("token refused", extra={"reason": reason})
    return TokenInvalid("The token is not valid")


class JwtVerifier:
    """Verifies the identity tokens of one issuer: one algorithm, one key (or a JWKS endpoint).

    Only the configured algorithm is accepted, which refuses ``alg: none`` and HS/RS confusion.

    :param algorithm: ``HS256``, ``RS256`` or ``ES256``.
    :param key: the HS256 secret or the PEM public key; ``None`` with a JWKS key set.
    :param issuer: the required ``iss``.
    :param audience: the required ``aud``.
    :param jwks: the identity provider's keys, chosen by the token's ``kid``.
    :param hospitals: the hospitals this issuer may assert; ``None``: any.
    :param leeway_seconds: the clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    """

    def __init__(
        self,
        algorithm: str,
        key: str | None,
        issuer: str,
        audience: str,
        jwks: JwksKeySet | None = None,
        *,
        hospitals: Iterable[str] | None = None,
        leeway_seconds: float = 30,
    ) -> None:
        if key is None and jwks is None:
            raise ValueError("a key or a JWKS key set is needed")
        self._algorithm = algorithm
        self._key = key
        self.issuer = issuer
        self._audience = audience
        self.jwks = jwks
        self._hospitals = frozenset(hospitals) if hospitals is not None else None
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Identity:
        """The identity an identity token of this issuer carries.

        :raises TokenExpired, TokenNotYetValid, TokenInvalid: for a token that does not verify.
        :raises IssuerNotTrusted: when this issuer may not assert the token's hospital.
        """
        claims = self.claims(token)
        if claims.get("purpose") is not None:
            raise _refused("purpose claim on an identity token")
        identity = _identity(claims, consult_id=None)
        if self._hospitals is not None and identity.hospital not in self._hospitals:
            logger.warning(
                "token refused", extra={"reason": "hospital not trusted", "iss": self.issuer}
            )
            raise IssuerNotTrusted("The token's issuer is not trusted for its hospital")
        return identity

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of a token of this issuer."""
        try:
            key: Any = self._key
            if self.jwks is not None:
                key = self.jwks.key(jwt.get_unverified_header(token).get("kid"))
            return jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                issuer=self.issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("The token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenNotYetValid("The token is not valid yet") from exc
        except TokenInvalid:
            logger.info("token refused", extra={"reason": "unknown signing key"})
            raise
        except Exception as exc:  # a malformed token or key: a refusal, never a server fault
            raise _refused(type(exc).__name__) from exc


def _identity(claims: Mapping[str, Any], consult_id: str | None) -> Identity:
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise TokenInvalid("The token names an unknown role") from exc
    exp = claims["exp"]
    return Identity(
        sub=str(claims["sub"]),
        name=str(claims.get("name") or claims["sub"]),
        role=role,
        hospital=str(claims["hospital"]),
        consult_id=consult_id,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
    )


def trusted_issuer_verifier(trusted: TrustedIssuer, leeway_seconds: float) -> JwtVerifier:
    """The verifier of one trusted issuer (of the trusted issuers file or a hospital record)."""
    return JwtVerifier(
        trusted.algorithm,
        trusted.key(),
        trusted.iss,
        trusted.audience,
        JwksKeySet(trusted.jwks_url, trusted.algorithm) if trusted.jwks_url else None,
        hospitals=trusted.hospitals,
        leeway_seconds=leeway_seconds,
    )


class HospitalIssuers:
    """The identity providers the hospital records name, each trusted for its own hospital only;
    reloaded after a record changes here (:meth:`reload`) and every ``refresh_seconds`` (a
    change made by another process).

    :param directory: the hospital records.
    :param leeway_seconds: the clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    :param refresh_seconds: how often the records are read again.
    """

    def __init__(
        self, directory: HospitalDirectory, leeway_seconds: float, refresh_seconds: float
    ) -> None:
        self._directory = directory
        self._leeway = leeway_seconds
        self._refresh_seconds = refresh_seconds
        self._verifiers: dict[str, JwtVerifier] = {}
        self._key_refreshers: dict[tuple[str, str], asyncio.Task[None]] = {}

    def get(self, iss: str) -> JwtVerifier | None:
        """The verifier of issuer ``iss`` if a hospital record names it."""
        return self._verifiers.get(iss)

    async def reload(self) -> None:
        """Read every hospital record's issuers now."""
        entries = await self._directory.all(with_secrets=True)
        verifiers = {
            issuer.iss: trusted_issuer_verifier(issuer.trusted(entry.code), self._leeway)
            for entry in entries
            for issuer in entry.profile.trusted_issuers
        }
        for verifier in verifiers.values():
            if verifier.jwks is not None:
                self._keep_keys_fresh(verifier)
        wanted = {(v.jwks.url, v.issuer) for v in verifiers.values() if v.jwks is not None}
        for key in set(self._key_refreshers) - wanted:
            self._key_refreshers.pop(key).cancel()
        self._verifiers = verifiers

    def _keep_keys_fresh(self, verifier: JwtVerifier) -> None:
        assert verifier.jwks is not None
        key = (verifier.jwks.url, verifier.issuer)
        previous = self._verifiers.get(verifier.issuer)
        if key in self._key_refreshers and previous is not None and previous.jwks is not None:
            verifier.jwks = previous.jwks  # the same endpoint: keep the keys fetched so far
            return
        self._key_refreshers[key] = asyncio.create_task(verifier.jwks.keep_fresh())

    async def keep_fresh(self) -> None:
        """Reload forever (a background job); stops the JWKS refreshers when cancelled."""
        try:
            while True:
                try:
                    await self.reload()
                except Exception as exc:  # the database away: keep the issuers known so far
                    logger.warning(
                        "reading hospital issuers failed", extra={"error": type(exc).__name__}
                    )
                await asyncio.sleep(self._refresh_seconds)
        finally:
            for task in self._key_refreshers.values():
                task.cancel()
            self._key_refreshers.clear()


class TokenVerifier:
    """Every token this deployment accepts: identity tokens of its trusted issuers (the
    environment's and the hospital records'), join links.

    :param issuers: one verifier per issuer of the environment.
    :param join_links: the verifier of this server's own join links (its key, its ``iss``).
    :param hospital_issuers: the issuers the hospital records name, if any.
    """

    def __init__(
        self,
        issuers: Iterable[JwtVerifier],
        join_links: JwtVerifier,
        hospital_issuers: HospitalIssuers | None = None,
    ) -> None:
        self._issuers = {verifier.issuer: verifier for verifier in issuers}
        self._join_links = join_links
        self.hospital_issuers = hospital_issuers

    @property
    def issuer_names(self) -> frozenset[str]:
        """The ``iss`` of every issuer of the environment (no hospital record may name them)."""
        return frozenset(self._issuers) | {self._join_links.issuer}

    @property
    def jwks(self) -> list[JwksKeySet]:
        """The JWKS key sets of the environment's issuers to keep fresh (and in readiness)."""
        return [v.jwks for v in self._issuers.values() if v.jwks is not None]

    def verify(self, token: str) -> Identity:
        """The identity a token carries.

        :raises TokenInvalid: for a token of no trusted issuer, and for any that does not verify.
        :raises IssuerNotTrusted: when its issuer may not assert the token's hospital.
        """
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise _refused(type(exc).__name__) from exc
        if unverified.get("purpose") == JOIN_PURPOSE:
            claims = self._join_links.claims(token)
            consult = claims.get("consult")
            if claims.get("purpose") != JOIN_PURPOSE or not isinstance(consult, str) or not consult:
                raise _refused("join link without its consult")
            return _identity(claims, consult_id=consult)
        iss = str(unverified.get("iss"))
        issuer = self._issuers.get(iss)
        if issuer is None and self.hospital_issuers is not None:
            issuer = self.hospital_issuers.get(iss)
        if issuer is None:
            raise _refused("unknown issuer")
        return issuer.verify(token)


class TokenIssuer:
    """Mints tokens: join links with the server's own key; identity tokens for the admin's tools.

    An identity with a ``consult_id`` becomes a join link (``purpose: "join"``).

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
            claims["purpose"] = JOIN_PURPOSE
            claims["consult"] = identity.consult_id
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=self._headers)


def _read(path: Path | None, what: str) -> str:
    if path is None:
        raise ConfigurationError(f"TELECONSULT_{what} is needed for RS256/ES256")
    return path.read_text()


def _join_key(settings: Settings) -> str:
    """The key of join links: this server mints and verifies them, so a secret it keeps."""
    secret = settings.signing_secret()
    check_hs256_secret(secret, "TELECONSULT_JWT_SECRET")
    return secret


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    """The verifier the settings describe: the settings' issuer, the trusted issuers file's, and
    this server's join links.

    The settings' single issuer may assert any hospital (the simple, one-hospital deployment);
    the file's issuers only the hospitals it lists.

    :raises ConfigurationError: for a key that cannot work (a short HS256 secret, a missing key,
        a trusted issuers file that is wrong).
    """
    leeway = settings.token_leeway_seconds
    if settings.jwt_algorithm == "HS256":
        key: str | None = _join_key(settings)
    elif settings.jwks_url:
        key = None
    else:
        key = _read(settings.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE")
    jwks = JwksKeySet(settings.jwks_url, settings.jwt_algorithm) if settings.jwks_url else None
    own = JwtVerifier(
        settings.jwt_algorithm,
        key,
        settings.jwt_issuer,
        settings.jwt_audience,
        jwks,
        leeway_seconds=leeway,
    )
    issuers = [own]
    if settings.trusted_issuers is not None:
        for trusted in load_trusted_issuers(settings.trusted_issuers):
            if trusted.iss == settings.jwt_issuer:
                raise ConfigurationError(
                    f"TELECONSULT_TRUSTED_ISSUERS lists {trusted.iss}, the issuer of "
                    "TELECONSULT_JWT_*: name each issuer once"
                )
            issuers.append(trusted_issuer_verifier(trusted, leeway))
    join_links = JwtVerifier(
        "HS256",
        _join_key(settings),
        settings.jwt_issuer,
        settings.jwt_audience,
        leeway_seconds=leeway,
    )
    return TokenVerifier(issuers, join_links)


def join_link_issuer(settings: Settings) -> TokenIssuer:
    """The minter of this server's join links (HS256 with the server's own secret)."""
    return TokenIssuer("HS256", _join_key(settings), settings.jwt_issuer, settings.jwt_audience)


def issuer_from_settings(settings: Settings) -> TokenIssuer | None:
    """The minter of identity tokens of the settings' issuer (``teleconsult token``, the demo),
    or ``None`` when this deployment holds no private key."""
    if settings.jwt_algorithm == "HS256":
        key = _join_key(settings)
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
