"""A page loaded from one node of a cluster keeps its signaling on another node, of another
origin (docs/cluster.md): the listed origins may connect, and the page's CSP lets it; no other."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import socketio
from pydantic import ValidationError

from config.settings import Settings
from rooms.identity import Role
from tests.integration.live import serving

NODE_C = "http://node-c.example:8443"
BALANCER = "https://lb.example"


async def connect_from(url: str, origin: str, token: str) -> socketio.AsyncClient:
    """A Socket.IO connection as a page of ``origin`` opens it."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url, auth={"token": token}, headers={"Origin": origin}, transports=["websocket"]
    )
    return client


async def test_a_page_of_a_listed_node_may_signal_here_and_a_page_of_another_origin_may_not(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(cluster_origins=f" {NODE_C}, {BALANCER}/ ")
    assert settings.cluster_origins == [NODE_C, BALANCER]
    async with serving(settings) as live:
        consult = await live.schedule_visit()
        async with live.http.get(f"{live.url}/join/{consult['id']}") as page:
            policy = page.headers["Content-Security-Policy"]
        assert (
            f"connect-src 'self' {NODE_C} ws://node-c.example:8443 {BALANCER} wss://lb.example;"
            in policy
        )

        token = live.token("dr-wang", Role.DOCTOR)
        for origin in (NODE_C, BALANCER, live.url):  # the listed ones, and the node's own
            client = await connect_from(live.url, origin, token)
            assert client.connected
            await client.disconnect()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect_from(live.url, "http://elsewhere.example", token)


def test_a_cluster_origin_is_an_origin_not_a_page() -> None:
    for wrong in ("node-c.example", "ftp://node-c.example", "https://lb.example/n/b"):
        with pytest.raises(ValidationError, match="not an origin"):
            Settings.model_validate({"cluster_origins": wrong})
