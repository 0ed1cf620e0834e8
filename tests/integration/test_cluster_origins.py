"""A page loaded from one node of a cluster keeps its signaling on another node, of another
origin (docs/cluster.md): the listed origins may connect, and the page's CSP lets it; no other."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import socketio
from pydantic import ValidationError

from config.settings import Settings
from rooms.identity import Role
from rooms.nodes import Node
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
    dumped = json.dumps(settings.model_dump(mode="json")["cluster_origins"])  # as an env var
    assert Settings.model_validate({"cluster_origins": dumped}).cluster_origins == [
        NODE_C,
        BALANCER,
    ]
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


async def test_a_page_learns_the_clusters_origins_from_its_own_origin(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(public_url=BALANCER, cluster_origins=NODE_C)
    async with serving(settings) as live, live.http.get(f"{live.url}/api/cluster") as answer:
        assert answer.status == 200
        assert await answer.json() == {"origins": [BALANCER, NODE_C]}


def test_the_trusted_origins_are_the_public_urls_and_the_listed_ones(
    settings_factory: Callable[..., Settings],
) -> None:
    listed = settings_factory(public_url=f"{BALANCER}/consult/", cluster_origins=NODE_C)
    assert listed.trusted_origins() == [BALANCER, NODE_C]
    assert settings_factory(public_url=BALANCER).trusted_origins() == [BALANCER]
    assert Node("n", f"{NODE_C}/n/c/").origin == NODE_C


def test_a_cluster_origin_is_an_origin_not_a_page() -> None:
    for wrong in ("node-c.example", "ftp://node-c.example", "https://lb.example/n/b"):
        with pytest.raises(ValidationError, match="not an origin"):
            Settings.model_validate({"cluster_origins": wrong})
