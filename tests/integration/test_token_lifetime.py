"""A connection lives as long as its token: when the token expires, the server closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rooms.identity import Role
from tests.integration.live import LiveServer, SignalingClient

Connect = Callable[..., Any]


async def test_a_connection_is_closed_when_its_token_expires(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    leeway = live_server.settings.token_leeway_seconds
    # Expired a moment ago, still inside the clock-skew leeway: accepted, for two more seconds.
    token = live_server.token("dr-wang", Role.DOCTOR, ttl=2 - leeway)
    doctor: SignalingClient = await clients(live_server.url, token)
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    lasting: SignalingClient = await clients(
        live_server.url, live_server.token_of(consult, "pt-li")
    )
    expired = await doctor.next("session_expired", timeout=15)
    assert expired["code"] == "token_expired"
    for _ in range(100):
        if not doctor.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not doctor.client.connected
    # Only that connection: a connection whose token is valid stays.
    assert lasting.client.connected
    assert (await lasting.call("join", {"consult_id": consult["id"]}))["ok"]
