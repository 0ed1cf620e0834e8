"""Tokens of a hospital identity provider that publishes its keys as JWKS (RS256, key rotation)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.settings import Settings
from migrations.runner import upgrade
from rooms.identity import Identity, Role
from signaling.app import create_app
from signaling.auth import JwksKeySet, JwtVerifier, TokenInvalid, TokenIssuer


class IdentityProvider:
    """A JWKS endpoint with RSA keys that can be rotated, and tokens signed by them."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = 0
        #: When set, served instead of the keys (a provider gone wrong).
        self.document: Any = None

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, kid: str, identity: Identity) -> str:
        pem = self.keys[kid].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        issuer = TokenIssuer("RS256", pem.decode(), "teleconsult", "teleconsult", key_id=kid)
        return issuer.mint(identity, 300)

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.document is not None:
            return web.json_response(self.document)
        keys = []
        for kid, key in self.keys.items():
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": keys})


@pytest.fixture
async def provider() -> AsyncIterator[tuple[IdentityProvider, str]]:
    idp = IdentityProvider()
    idp.add_key("k1")
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", idp.jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield idp, str(server.make_url("/.well-known/jwks.json"))
    await server.close()


DOCTOR = Identity("dr-wang", "Dr. Wang Fang", Role.DOCTOR, "h-east")


async def test_tokens_signed_with_a_published_key_are_accepted_after_rotation(
    provider: tuple[IdentityProvider, str],
) -> None:
    idp, url = provider
    keys = JwksKeySet(url, refresh_seconds=300, retry_seconds=0.1)
    verifier = JwtVerifier("RS256", None, "teleconsult", "teleconsult", keys, leeway_seconds=0)
    with pytest.raises(TokenInvalid):
        verifier.verify(idp.token("k1", DOCTOR))  # nothing fetched yet: refused, never blocks
    refresher = asyncio.create_task(keys.keep_fresh())
    try:
        for _ in range(100):
            if keys.loaded:
                break
            await asyncio.sleep(0.02)
        assert verifier.verify(idp.token("k1", DOCTOR)) == DOCTOR
        idp.add_key("k2")
        rotated = idp.token("k2", DOCTOR)
        with pytest.raises(TokenInvalid):
            verifier.verify(rotated)  # unknown kid: refused now, fetched again soon
        for _ in range(100):
            try:
                assert verifier.verify(rotated) == DOCTOR
                break
            except TokenInvalid:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the rotated key was never fetched")
        fetches = idp.fetches
        for _ in range(20):
            with pytest.raises(TokenInvalid):
                verifier.verify(jwt.encode({"sub": "x"}, "s" * 32, headers={"kid": "forged"}))
        await asyncio.sleep(0.3)
        assert idp.fetches - fetches <= 4, "unknown kids must not hammer the identity provider"
    finally:
        refresher.cancel()


async def test_the_server_verifies_identity_provider_tokens_from_jwks(
    provider: tuple[IdentityProvider, str],
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
) -> None:
    idp, url = provider
    await asyncio.to_thread(upgrade, sqlite_url)
    settings = settings_factory(database_url=sqlite_url, jwt_algorithm="RS256", jwks_url=url)
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            base = str(server.make_url("")).rstrip("/")
            ready: dict[str, Any] = {}
            for _ in range(100):
                async with http.get(f"{base}/readyz") as response:
                    ready = await response.json()
                if ready["checks"].get("signing_keys") == "ok":
                    break
                await asyncio.sleep(0.05)
            assert ready["checks"]["signing_keys"] == "ok"
            coordinator = Identity("c-1", "Coordinator", Role.COORDINATOR, "h-east")
            body = {
                "kind": "visit",
                "hospital": "h-east",
                "title": "Follow-up",
                "scheduled_at": "2026-12-01T09:00:00+08:00",
                "host": {"sub": "dr-wang", "name": "Dr. Wang Fang"},
                "participants": [{"sub": "pt-li", "name": "Li Hua", "role": "patient"}],
            }
            headers = {"Authorization": f"Bearer {idp.token('k1', coordinator)}"}
            async with http.post(f"{base}/api/consults", json=body, headers=headers) as response:
                assert response.status == 201
                consult = await response.json()
            # Join links are the server's own, whatever the identity provider: the patient's
            # carries one; the doctor opens theirs with the identity provider's token.
            links = {p["sub"]: p["join_url"] for p in consult["participants"]}
            assert "?token=" in links["pt-li"] and "token=" not in links["dr-wang"]
            hs256 = jwt.encode({"sub": "c-1"}, "secret" * 8, algorithm="HS256")
            async with http.post(
                f"{base}/api/consults", json=body, headers={"Authorization": f"Bearer {hs256}"}
            ) as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "token_invalid"
    finally:
        await server.close()


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail("never happened")


async def test_a_malformed_or_mixed_jwks_refuses_tokens_and_never_stops_the_refresher(
    provider: tuple[IdentityProvider, str], caplog: pytest.LogCaptureFixture
) -> None:
    idp, url = provider
    keys = JwksKeySet(url, refresh_seconds=0.05, retry_seconds=0.05)
    verifier = JwtVerifier("RS256", None, "teleconsult", "teleconsult", keys)
    refresher = asyncio.create_task(keys.keep_fresh())
    try:
        # Not a key set at all: every token is refused (401), the refresher goes on.
        idp.document = ["not", "a", "key", "set"]
        await until(lambda: idp.fetches >= 3)
        with pytest.raises(TokenInvalid):
            verifier.verify(idp.token("k1", DOCTOR))
        assert not refresher.done()
        assert "fetching signing keys failed" in caplog.text

        # Keys of mixed types (an EC key, a nonsense entry, the RSA key): the RSA key is used,
        # a token naming the EC key is refused, and each skipped key leaves a log line.
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp.keys["k1"].public_key()))
        idp.document = {
            "keys": [
                {**ec_jwk, "kid": "ec1"},
                {"kty": "nonsense", "kid": "x"},
                {**rsa_jwk, "kid": "k1"},
            ]
        }
        await until(lambda: keys.loaded)
        assert verifier.verify(idp.token("k1", DOCTOR)) == DOCTOR
        forged = jwt.encode(
            {"sub": "dr-wang", "role": "doctor", "hospital": "h-east"},
            ec_key,
            algorithm="ES256",
            headers={"kid": "ec1"},
        )
        with pytest.raises(TokenInvalid):
            verifier.verify(forged)
        assert "signing key skipped" in caplog.text

        # Garbage again: the keys fetched before stay in use.
        idp.document = {"keys": "nonsense"}
        fetches = idp.fetches
        await until(lambda: idp.fetches >= fetches + 2)
        assert verifier.verify(idp.token("k1", DOCTOR)) == DOCTOR
        assert not refresher.done()
    finally:
        refresher.cancel()
