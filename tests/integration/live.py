"""A real server in the test's event loop, and Socket.IO clients that talk to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import socketio
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from config.settings import Settings
from migrations.runner import upgrade
from rooms.identity import Identity, Role
from signaling.app import create_app
from signaling.auth import TokenIssuer, issuer_from_settings

HOSPITAL = "h-east"


@dataclass
class LiveServer:
    """A running server, a token issuer with its key, and an HTTP client."""

    url: str
    settings: Settings
    issuer: TokenIssuer
    http: ClientSession

    def token(
        self, sub: str, role: Role | str, hospital: str = HOSPITAL, ttl: int = 600, **extra: Any
    ) -> str:
        """A token for a person of a hospital."""
        identity = Identity(sub, extra.get("name", sub), Role(role), hospital, extra.get("consult"))
        return self.issuer.mint(identity, ttl)

    def headers(self, token: str) -> dict[str, str]:
        """The Authorization header of ``token``."""
        return {"Authorization": f"Bearer {token}"}

    async def schedule_visit(self, **overrides: Any) -> dict[str, Any]:
        """Schedule a visit of Dr. Wang with the patient Li Hua; the consult with join links."""
        body: dict[str, Any] = {
            "kind": "visit",
            "hospital": HOSPITAL,
            "title": "Follow-up of hypertension",
            "scheduled_at": datetime.now(UTC).isoformat(),
            "host": {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"},
            "participants": [{"sub": "pt-li", "name": "Li Hua", "role": "patient"}],
        }
        body.update(overrides)
        coordinator = self.token("coord-1", Role.COORDINATOR)
        async with self.http.post(
            f"{self.url}/api/consults", json=body, headers=self.headers(coordinator)
        ) as response:
            assert response.status == 201, await response.text()
            return await response.json()


def join_token(consult: dict[str, Any], sub: str) -> str:
    """The token carried by a participant's join link."""
    participant = next(p for p in consult["participants"] if p["sub"] == sub)
    return participant["join_url"].split("token=", 1)[1]


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
        """Emit an event and return its acknowledgement."""
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
    "participant_reconnecting",
    "resume_token",
    "server_going_away",
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


@contextlib.asynccontextmanager
async def serve(settings: Settings, port: int | None = None) -> AsyncIterator[LiveServer]:
    """Run the whole server with `settings` (its database already migrated) until the exit.

    :param settings: The server's settings.
    :param port: The port to listen on (a restarted server takes its predecessor's); default free.
    """
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    try:
        async with ClientSession() as http:
            yield LiveServer(str(server.make_url("")).rstrip("/"), settings, issuer, http)
    finally:
        await server.close()


@pytest.fixture
async def live_server(
    database_url: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[LiveServer]:
    """The whole server on a fresh, migrated database (SQLite and PostgreSQL)."""
    await asyncio.to_thread(upgrade, database_url)
    async with serve(settings_factory(database_url=database_url)) as server:
        yield server


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
