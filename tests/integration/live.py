"""A real server in the test's event loop, and Socket.IO clients that talk to it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from config.settings import Settings
from migrations.runner import upgrade
from rooms.identity import Identity, Role
from signaling.access_log import AccessLogger
from signaling.app import create_app
from signaling.auth import TokenIssuer, issuer_from_settings
from tests.log_scan import register_secret

HOSPITAL = "h-east"
#: Settings that lift the rate limits, for tests that make many calls on purpose (the access
#: matrix, fuzzing); the limits themselves are tested in test_limits.py.
NO_RATE_LIMITS = {
    name: "1000000/minute" for name in Settings.model_fields if name.startswith("rate_limit_")
}


@dataclass
class LiveServer:
    """A running server, a token issuer with its key, an HTTP client, and the application (when
    it runs in the test's own process)."""

    url: str
    settings: Settings
    issuer: TokenIssuer
    http: ClientSession
    app: web.Application | None = None

    def token(
        self, sub: str, role: Role | str, hospital: str = HOSPITAL, ttl: int = 600, **extra: Any
    ) -> str:
        """An identity token of a person of a hospital (their identity provider's)."""
        identity = Identity(sub, extra.get("name", sub), Role(role), hospital)
        token = self.issuer.mint(identity, ttl)
        register_secret(token)
        return token

    def token_of(self, consult: dict[str, Any], sub: str) -> str:
        """What a participant of a scheduled consult opens its link with: the join link's token
        for a patient, their own identity token (as the hospital portal passes it) for staff."""
        invited = next(p for p in consult["participants"] if p["sub"] == sub)
        if "token=" in invited["join_url"]:
            return join_token(consult, sub)
        return self.token(sub, invited["role"], invited["hospital"], name=invited["name"])

    def headers(self, token: str) -> dict[str, str]:
        """The Authorization header of ``token``."""
        return {"Authorization": f"Bearer {token}"}

    async def schedule_visit(self, **overrides: Any) -> dict[str, Any]:
        """Schedule a visit of Dr. Wang with the patient Li Hua; the consult with join links."""
        body = visit_body(**overrides)
        coordinator = self.token("coord-1", Role.COORDINATOR)
        async with self.http.post(
            f"{self.url}/api/consults", json=body, headers=self.headers(coordinator)
        ) as response:
            assert response.status == 201, await response.text()
            return await response.json()


def visit_body(**overrides: Any) -> dict[str, Any]:
    """The body of ``POST /api/consults`` for a visit of Dr. Wang with the patient Li Hua, now;
    ``overrides`` replace its fields."""
    body: dict[str, Any] = {
        "kind": "visit",
        "hospital": HOSPITAL,
        "title": "Follow-up of hypertension",
        "scheduled_at": datetime.now(UTC).isoformat(),
        "host": {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"},
        "participants": [{"sub": "pt-li", "name": "Li Hua", "role": "patient"}],
    }
    body.update(overrides)
    return body


def join_token(consult: dict[str, Any], sub: str) -> str:
    """The token carried by a participant's join link (patients: staff links carry none)."""
    participant = next(p for p in consult["participants"] if p["sub"] == sub)
    assert "token=" in participant["join_url"], f"{sub}'s link carries no token: staff use theirs"
    token = participant["join_url"].split("token=", 1)[1]
    register_secret(token)
    return token


def participant_id(consult: dict[str, Any], sub: str) -> str:
    """The participant id of a subject in a scheduled consult."""
    return next(p["participant_id"] for p in consult["participants"] if p["sub"] == sub)


@dataclass
class SignalingClient:
    """A python-socketio client that records every event the server sends."""

    client: socketio.AsyncClient
    events: dict[str, asyncio.Queue[Any]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )

    async def call(self, event: str, payload: Any = None, timeout: float = 10) -> dict[str, Any]:
        """Emit an event and return its acknowledgement (chat text is registered as a secret)."""
        if event == "chat" and isinstance(payload, dict) and isinstance(payload.get("text"), str):
            register_secret(payload["text"])
        return await self.client.call(event, payload, timeout=timeout)

    async def next(self, event: str, timeout: float = 10) -> Any:
        """The next payload of ``event`` sent by the server."""
        return await asyncio.wait_for(self.events[event].get(), timeout)

    async def close(self) -> None:
        """Disconnect."""
        await self.client.disconnect()


SERVER_EVENTS = (
    "lobby",
    "admitted",
    "participant_joined",
    "participant_left",
    "participant_updated",
    "subscriber_offer",
    "consult_ended",
    "muted_by_host",
    "removed",
    "chat_message",
    "clinical_updated",
    "session_expired",
    "participant_reconnecting",
    "resume_token",
    "server_going_away",
    "media_error",
)


async def connect(
    url: str, token: str | None, *, resume_token: str | None = None
) -> SignalingClient:
    """Connect a Socket.IO client with ``token`` (raises socketio's ConnectionError if refused).

    With ``resume_token`` the connection presents it instead, as a page coming back does.
    """
    client = socketio.AsyncClient(reconnection=False)
    signaling = SignalingClient(client)
    for name in SERVER_EVENTS:
        client.on(name, lambda data, name=name: signaling.events[name].put_nowait(data))
    auth: dict[str, str] | None = {"token": token} if token is not None else None
    if resume_token is not None:
        auth = {"resume_token": resume_token}
    await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
    return signaling


async def admitted_visit(
    server: LiveServer, clients: Callable[..., Any]
) -> tuple[dict[str, Any], SignalingClient, SignalingClient]:
    """A new visit, Dr. Wang joined and Li Hua admitted from the lobby: the consult, the
    doctor's and the patient's signaling (``clients`` is the fixture that connects them)."""
    consult = await server.schedule_visit()
    doctor = await clients(server.url, server.token("dr-wang", Role.DOCTOR))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    patient = await clients(server.url, join_token(consult, "pt-li"))
    assert (await patient.call("join", {"consult_id": consult["id"]}))["status"] == "lobby"
    assert (await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")}))["ok"]
    await patient.next("admitted")
    return consult, doctor, patient


@asynccontextmanager
async def serving(settings: Settings, port: int | None = None) -> AsyncIterator[LiveServer]:
    """The whole server with ``settings``, on its (fresh) database, migrated first, with the
    access log of `teleconsult serve` (the suite checks every log line: tests/log_scan.py).

    :param port: The port to listen on (a restarted server takes its predecessor's); default free.
    """
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    server = TestServer(
        create_app(settings), host="127.0.0.1", port=port, access_log_class=AccessLogger
    )
    await server.start_server()
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    async with ClientSession() as http:
        yield LiveServer(str(server.make_url("")).rstrip("/"), settings, issuer, http, server.app)
    await server.close()


@pytest.fixture
async def live_server(
    database_url: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[LiveServer]:
    """The whole server on a fresh, migrated database (SQLite and PostgreSQL)."""
    async with serving(settings_factory(database_url=database_url)) as live:
        yield live


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Any]]:
    """Connect Socket.IO clients; all of them are disconnected at the end of the test."""
    opened: list[SignalingClient] = []

    async def open_client(
        url: str, token: str | None, *, resume_token: str | None = None
    ) -> SignalingClient:
        client = await connect(url, token, resume_token=resume_token)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        if client.client.connected:
            await client.close()
