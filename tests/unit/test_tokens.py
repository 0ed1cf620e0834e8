"""Token verification: what a hospital's identity provider hands us, and what we refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.issuers import ConfigurationError
from config.settings import Settings
from rooms.errors import IssuerNotTrusted
from rooms.identity import Identity, Role
from signaling.auth import (
    JwtVerifier,
    TokenExpired,
    TokenInvalid,
    TokenIssuer,
    TokenNotYetValid,
    TokenVerifier,
    verifier_from_settings,
)
from signaling.cli import main

SECRET = "s" * 48
OTHER_SECRET = "n" * 48
DOCTOR = Identity("dr-1", "Dr. Wang", Role.DOCTOR, "h1")


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "dr-1",
        "name": "Dr. Wang",
        "role": "doctor",
        "hospital": "h1",
        "iss": "teleconsult",
        "aud": "teleconsult",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return base


def hs_verifier() -> JwtVerifier:
    return JwtVerifier("HS256", SECRET, "teleconsult", "teleconsult", leeway_seconds=0)


def token_verifier() -> TokenVerifier:
    """This deployment's issuer (any hospital), north-idp for "north", and its join links."""
    north = JwtVerifier("HS256", OTHER_SECRET, "north-idp", "teleconsult", hospitals=["north"])
    return TokenVerifier([hs_verifier(), north], hs_verifier())


def rsa_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def test_a_valid_token_becomes_an_identity() -> None:
    token = TokenIssuer("HS256", SECRET, "teleconsult", "teleconsult").mint(DOCTOR, 60)
    assert hs_verifier().verify(token) == DOCTOR


def test_a_join_link_names_its_consult() -> None:
    identity = Identity("p-1", "Li Hua", Role.PATIENT, "h1", consult_id="c-1")
    token = TokenIssuer("HS256", SECRET, "teleconsult", "teleconsult").mint(identity, 60)
    verified = token_verifier().verify(token)
    assert verified.consult_id == "c-1" and verified.is_join_link
    # Only the join links' verifier takes it: as an identity token it is refused.
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_a_join_link_signed_by_an_identity_provider_is_refused() -> None:
    # An identity provider cannot mint join links: they are signed with the server's own key.
    provider = TokenIssuer("HS256", OTHER_SECRET, "north-idp", "teleconsult")
    identity = Identity("p-1", "Li Hua", Role.PATIENT, "north", consult_id="c-1")
    with pytest.raises(TokenInvalid):
        token_verifier().verify(provider.mint(identity, 60))


def test_an_issuer_asserts_only_its_own_hospitals() -> None:
    provider = TokenIssuer("HS256", OTHER_SECRET, "north-idp", "teleconsult")
    north = Identity("dr-2", "Dr. Bei", Role.DOCTOR, "north")
    assert token_verifier().verify(provider.mint(north, 60)) == north
    elsewhere = Identity("dr-2", "Dr. Bei", Role.DOCTOR, "h1")
    with pytest.raises(IssuerNotTrusted) as refused:
        token_verifier().verify(provider.mint(elsewhere, 60))
    assert (refused.value.code, refused.value.status) == ("issuer_not_trusted", 401)


def test_a_token_of_an_unknown_issuer_is_refused() -> None:
    stranger = TokenIssuer("HS256", OTHER_SECRET, "south-idp", "teleconsult")
    with pytest.raises(TokenInvalid):
        token_verifier().verify(stranger.mint(DOCTOR, 60))


def test_clock_skew_within_the_leeway_is_accepted() -> None:
    now = int(time.time())
    late = jwt.encode(claims(exp=now - 5), SECRET, algorithm="HS256")
    early = jwt.encode(claims(nbf=now + 5, iat=now + 5), SECRET, algorithm="HS256")
    lenient = JwtVerifier("HS256", SECRET, "teleconsult", "teleconsult", leeway_seconds=30)
    assert lenient.verify(late) == DOCTOR
    assert lenient.verify(early) == DOCTOR
    with pytest.raises(TokenExpired):
        lenient.verify(jwt.encode(claims(exp=now - 60), SECRET, algorithm="HS256"))


def test_an_hs256_secret_shorter_than_32_bytes_refuses_to_start(
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        verifier_from_settings(settings_factory(jwt_secret="too-short-secret"))
    monkeypatch.setenv("TELECONSULT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TELECONSULT_JWT_SECRET", "too-short-secret")
    assert main(["token", "--sub", "x", "--role", "doctor", "--hospital", "h1"]) == 2
    assert (
        "TELECONSULT_JWT_SECRET: an HS256 secret needs at least 32 bytes" in capsys.readouterr().err
    )


def test_a_trusted_issuer_with_a_short_secret_refuses_to_start(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    issuers = tmp_path / "issuers.json"
    entry = {"iss": "north-idp", "algorithm": "HS256", "secret": "short", "hospitals": ["north"]}
    issuers.write_text(json.dumps({"issuers": [entry]}))
    with pytest.raises(ConfigurationError, match=r"north-idp.*at least 32 bytes"):
        verifier_from_settings(settings_factory(trusted_issuers=issuers))


def test_an_expired_token_is_refused() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    with pytest.raises(TokenExpired):
        hs_verifier().verify(token)


def test_a_token_not_yet_valid_is_refused() -> None:
    token = jwt.encode(claims(nbf=int(time.time()) + 300), SECRET, algorithm="HS256")
    with pytest.raises(TokenNotYetValid):
        hs_verifier().verify(token)


def test_a_token_for_another_audience_is_refused() -> None:
    token = jwt.encode(claims(aud="another-app"), SECRET, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_a_token_from_another_issuer_is_refused() -> None:
    token = jwt.encode(claims(iss="someone-else"), SECRET, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = jwt.encode(claims(), "x" * 48, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_a_token_without_a_role_is_refused() -> None:
    payload = claims()
    del payload["role"]
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(jwt.encode(payload, SECRET, algorithm="HS256"))


def test_a_token_with_an_unknown_role_is_refused() -> None:
    token = jwt.encode(claims(role="superuser"), SECRET, algorithm="HS256")
    with pytest.raises(TokenInvalid):
        hs_verifier().verify(token)


def test_rs256_tokens_verify_with_the_public_key() -> None:
    private, public = rsa_keys()
    token = TokenIssuer("RS256", private, "teleconsult", "teleconsult").mint(DOCTOR, 60)
    assert JwtVerifier("RS256", public, "teleconsult", "teleconsult").verify(token) == DOCTOR


def test_es256_tokens_verify_with_the_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = TokenIssuer("ES256", private, "teleconsult", "teleconsult").mint(DOCTOR, 60)
    assert JwtVerifier("ES256", public, "teleconsult", "teleconsult").verify(token) == DOCTOR


def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    """HS/RS confusion: the public key used as an HMAC secret must not pass."""
    _, public = rsa_keys()
    # PyJWT itself refuses to HMAC with a PEM key, so the attacker's token is forged by hand.

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    signature = b64(hmac.new(public.encode(), header + b"." + body, hashlib.sha256).digest())
    token = (header + b"." + body + b"." + signature).decode()
    with pytest.raises(TokenInvalid):
        JwtVerifier("RS256", public, "teleconsult", "teleconsult").verify(token)
