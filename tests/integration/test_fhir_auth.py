"""Each hospital's FHIR store is reached with its own credentials: SMART Backend Services (a token
obtained with a signed client assertion, verified by an authorisation server served in the test,
cached, renewed after expiry and on a 401) or a static bearer token; and a consult's records go to
the store of the consult's hospital only, whoever of which hospital wrote them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from clinical.fhir_auth import ASSERTION_TYPE, AuthSpec, BearerSpec, SmartSpec
from config.settings import Settings
from migrations.runner import upgrade
from tests.integration.clinical_helpers import NOTE
from tests.integration.live import HOSPITAL, LiveServer
from tests.integration.test_outbox_fhir import (
    FhirServer,
    all_delivered,
    call,
    sign_visit_documents,
    teleconsult,
    wait_for_outbox,
)
from tests.log_scan import register_secret

CLIENT_ID = "teleconsult-east"
OTHER_HOSPITAL = "h-west"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedFhir:
    """A FHIR endpoint (``/fhir``) that demands a bearer token, beside an OAuth2 token endpoint
    (``/token``) that grants tokens for SMART Backend Services client assertions only.

    :param public_key: the registered public key of the client's assertions.
    :param expires_in: the lifetime of the tokens it grants, in seconds.
    :param enforce_expiry: whether the FHIR endpoint refuses tokens past their lifetime.
    """

    def __init__(
        self, public_key: Any = None, expires_in: int = 3600, enforce_expiry: bool = True
    ) -> None:
        self.fhir = FhirServer()
        self.public_key = public_key
        self.expires_in = expires_in
        self.enforce_expiry = enforce_expiry
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.assertions_refused = 0
        self.unauthorized = 0
        self.authorized_puts = 0
        self.seen_jti: set[str] = set()
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_put("/fhir/{type}/{id}", self.guarded(self.fhir.put))
        return app

    def grant_static(self, token: str) -> None:
        """Accept a static bearer token forever."""
        self.tokens[token] = float("inf")

    def revoke_all(self) -> None:
        """Forget every token granted (the server restarted, a key was rotated…)."""
        self.tokens.clear()

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        form = await request.post()
        token_url = f"{self.url}/token"
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != ASSERTION_TYPE
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        try:
            claims = jwt.decode(
                str(form["client_assertion"]),
                self.public_key,
                algorithms=["RS384", "ES384"],
                audience=token_url,
                issuer=CLIENT_ID,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except (jwt.InvalidTokenError, KeyError):
            self.assertions_refused += 1
            return web.json_response({"error": "invalid_client"}, status=401)
        if (
            claims["sub"] != CLIENT_ID
            or claims["exp"] > time.time() + 300
            or claims["jti"] in self.seen_jti
        ):
            self.assertions_refused += 1
            return web.json_response({"error": "invalid_client"}, status=401)
        self.seen_jti.add(claims["jti"])
        token = secrets.token_urlsafe(32)
        register_secret(token)
        self.tokens[token] = time.monotonic() + self.expires_in
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": form.get("scope"),
            }
        )

    def guarded(self, handler: Handler) -> Handler:
        async def guard(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
            expires_at = self.tokens.get(token)
            if expires_at is None or (self.enforce_expiry and time.monotonic() >= expires_at):
                self.unauthorized += 1
                return web.json_response({"resourceType": "OperationOutcome"}, status=401)
            self.authorized_puts += 1
            return await handler(request)

        return guard


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[GuardedFhir], Awaitable[GuardedFhir]]]:
    servers: list[TestServer] = []

    async def start(guarded: GuardedFhir) -> GuardedFhir:
        server = TestServer(guarded.app(), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        guarded.url = str(server.make_url("")).rstrip("/")
        return guarded

    yield start
    for server in servers:
        await server.close()


def key_pair(kind: str) -> tuple[str, Any]:
    """A private key in PEM and its public key."""
    private: PrivateKeyTypes = (
        ec.generate_private_key(ec.SECP384R1())
        if kind == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    register_secret(pem)
    return pem, private.public_key()


def smart(guarded: GuardedFhir, pem: str) -> SmartSpec:
    return SmartSpec(
        token_url=f"{guarded.url}/token",
        client_id=CLIENT_ID,
        private_key_pem=pem,
        key_id="key-1",
        scope="system/*.write",
    )


def auth_record(auth: AuthSpec) -> dict[str, Any]:
    """A store's credentials as a hospital record writes them."""
    if isinstance(auth, BearerSpec):
        return {"kind": "bearer", "token": auth.token}
    if isinstance(auth, SmartSpec):
        return {"kind": "smart", **asdict(auth)}
    return {"kind": "none"}


def store_record(code: str, guarded: GuardedFhir, auth: AuthSpec) -> dict[str, Any]:
    """A hospital record whose FHIR store is ``guarded``, reached with ``auth``."""
    return {
        "display_names": {"en": code},
        "record_store": {
            "kind": "fhir",
            "base_url": f"{guarded.url}/fhir",
            "auth": auth_record(auth),
        },
    }


async def set_stores(live: LiveServer, **by_hospital: tuple[GuardedFhir, AuthSpec]) -> None:
    """The region's administrator names each hospital's own FHIR store in its record."""
    admin = live.token("admin-region", "admin", hospital=live.settings.region_code)
    for name, (guarded, auth) in by_hospital.items():
        code = name.replace("_", "-")
        await call(live, admin, "PUT", f"/api/hospitals/{code}", store_record(code, guarded, auth))


async def settings_for(factory: Callable[..., Settings], sqlite_url: str) -> Settings:
    await asyncio.to_thread(upgrade, sqlite_url)
    return factory(
        database_url=sqlite_url,
        outbox_backoff_seconds=0.02,
        outbox_max_attempts=50,
        outbox_poll_seconds=0.1,
    )


async def deliver_visit(live: LiveServer) -> dict[str, Any]:
    """A visit with a signed note and prescription, once both are delivered."""
    documents = await sign_visit_documents(live)
    await wait_for_outbox(live, lambda e: len(e) == 2 and all_delivered(e))
    return documents


async def deliver_note(live: LiveServer, patient: str, entries_before: int) -> str:
    """Another patient's visit with a signed note, once delivered; the note's id."""
    consult = await live.schedule_visit(
        participants=[{"sub": patient, "name": patient, "role": "patient"}]
    )
    doctor = live.token_of(consult, "dr-wang")
    note = await call(live, doctor, "POST", f"/api/consults/{consult['id']}/notes", NOTE)
    await call(live, doctor, "POST", f"/api/notes/{note['id']}/sign")
    await wait_for_outbox(live, lambda e: len(e) == entries_before + 1 and all_delivered(e))
    return str(note["id"])


@pytest.mark.parametrize("key_kind", ["rsa", "ec"])
async def test_smart_token_is_obtained_with_a_signed_assertion_cached_and_renewed_on_401(
    key_kind: str,
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    pem, public = key_pair(key_kind)
    east = await serve(GuardedFhir(public))
    settings = await settings_for(settings_factory, sqlite_url)
    async with teleconsult(settings) as live:
        await set_stores(live, h_east=(east, smart(east, pem)))
        first = await deliver_visit(live)
        # One token for the note's and the prescription's many PUTs.
        assert east.token_requests == 1
        assert east.unauthorized == 0
        assert ("Composition", f"note-{first['note']['id']}") in east.fhir.resources
        east.revoke_all()
        second = await deliver_note(live, "pt-zhou", entries_before=2)
    # The revoked token was refused once, a new one requested with a new assertion, and reused.
    assert east.unauthorized == 1
    assert east.token_requests == 2
    assert east.assertions_refused == 0
    assert len(east.seen_jti) == 2
    assert ("Composition", f"note-{second}") in east.fhir.resources
    assert east.fhir.invalid == []


async def test_smart_token_is_renewed_after_it_expires(
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    pem, public = key_pair("rsa")
    # The FHIR endpoint would take the expired token: only our own expiry can renew it.
    east = await serve(GuardedFhir(public, expires_in=1, enforce_expiry=False))
    settings = await settings_for(settings_factory, sqlite_url)
    async with teleconsult(settings) as live:
        await set_stores(live, h_east=(east, smart(east, pem)))
        await deliver_visit(live)
        before = east.token_requests
        await asyncio.sleep(1.2)
        second = await deliver_note(live, "pt-zhou", entries_before=2)
    assert east.token_requests > before >= 1
    assert east.unauthorized == 0
    assert ("Composition", f"note-{second}") in east.fhir.resources


async def test_a_refused_client_assertion_delivers_nothing(
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    _, registered = key_pair("rsa")
    stolen_pem, _ = key_pair("rsa")
    east = await serve(GuardedFhir(registered))
    settings = await settings_for(settings_factory, sqlite_url)
    settings = settings.model_copy(update={"outbox_max_attempts": 2})
    async with teleconsult(settings) as live:
        await set_stores(live, h_east=(east, smart(east, stolen_pem)))
        await sign_visit_documents(live)
        entries = await wait_for_outbox(
            live, lambda e: len(e) == 2 and all(x["status"] == "failed" for x in e)
        )
    assert east.assertions_refused >= 2
    assert east.fhir.resources == {}
    assert all(entry["status"] == "failed" for entry in entries)


async def test_static_bearer_token(
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    east = await serve(GuardedFhir())
    token = secrets.token_urlsafe(32)
    register_secret(token)
    east.grant_static(token)
    settings = await settings_for(settings_factory, sqlite_url)
    async with teleconsult(settings) as live:
        await set_stores(live, h_east=(east, BearerSpec(token)))
        documents = await deliver_visit(live)
    assert east.unauthorized == 0
    assert east.token_requests == 0
    assert east.authorized_puts >= 6
    assert ("Composition", f"note-{documents['note']['id']}") in east.fhir.resources


async def test_a_cross_hospital_referral_writes_the_note_to_the_consults_hospital_only(
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    east, west = await serve(GuardedFhir()), await serve(GuardedFhir())
    east_token, west_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    register_secret(east_token, west_token)
    east.grant_static(east_token)
    west.grant_static(west_token)
    settings = await settings_for(settings_factory, sqlite_url)
    async with teleconsult(settings) as live:
        await set_stores(
            live, h_east=(east, BearerSpec(east_token)), h_west=(west, BearerSpec(west_token))
        )
        referral = await live.schedule_visit(
            participants=[
                {"sub": "pt-li", "name": "Li Hua", "role": "patient"},
                {"sub": "ex-chen", "name": "Chen", "role": "expert", "hospital": OTHER_HOSPITAL},
            ]
        )
        expert = live.token_of(referral, "ex-chen")
        note = await call(live, expert, "POST", f"/api/consults/{referral['id']}/notes", NOTE)
        await call(live, expert, "POST", f"/api/notes/{note['id']}/sign")
        await wait_for_outbox(live, lambda e: len(e) == 1 and all_delivered(e))
    assert ("Composition", f"note-{note['id']}") in east.fhir.resources
    assert ("Encounter", f"enc-{referral['id']}") in east.fhir.resources
    assert west.fhir.resources == {}
    assert west.authorized_puts == west.unauthorized == 0
    assert referral["hospital"] == HOSPITAL


async def test_a_rotated_bearer_token_is_used_from_the_next_delivery(
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],
) -> None:
    east = await serve(GuardedFhir())
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    register_secret(old, new)
    east.grant_static(old)
    settings = await settings_for(settings_factory, sqlite_url)
    async with teleconsult(settings) as live:
        await set_stores(live, h_east=(east, BearerSpec(old)))
        await deliver_visit(live)
        # The hospital's administrator rotates the token: the old one stops working.
        east.revoke_all()
        east.grant_static(new)
        await set_stores(live, h_east=(east, BearerSpec(new)))
        second = await deliver_note(live, "pt-zhou", entries_before=2)
    assert east.unauthorized == 0
    assert ("Composition", f"note-{second}") in east.fhir.resources
