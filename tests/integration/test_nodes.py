"""The node directory in the real Redis: liveness by heartbeat, placement by load and region,
a dead node's consults taken over once."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from rooms.nodes import Node, NodeLoad, NoNodeInRegion, NoTrustedNode, RedisNodes

pytestmark = pytest.mark.redis


def node(name: str, forwarded: int = 0, region: str | None = None) -> Node:
    """A node named ``name`` carrying ``forwarded`` streams, at ``http://<name>.test/``."""
    return Node(name, f"http://{name}.test", ["127.0.0.1"], region, NodeLoad(forwarded=forwarded))


async def test_a_new_consult_goes_on_the_least_loaded_node_and_stays_there(
    redis_client: aioredis.Redis,
) -> None:
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=5)
    busy, idle = node("busy", forwarded=40), node("idle", forwarded=2)
    for each in (busy, idle):
        await directory.heartbeat(each)
    placement = await directory.place("c1", busy)
    assert (placement.node.node_id, placement.taken_over_from) == ("idle", None)
    await directory.heartbeat(node("idle", forwarded=90))  # busier now: the consult stays
    assert (await directory.place("c1", busy)).node.node_id == "idle"


async def test_a_region_keeps_a_consult_on_its_nodes_or_refuses(
    redis_client: aioredis.Redis,
) -> None:
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=5)
    near, far = node("near", forwarded=50, region="dc1"), node("far", region="dc2")
    for each in (near, far):
        await directory.heartbeat(each)
    assert (await directory.place("c1", far, region="dc1")).node.node_id == "near"
    with pytest.raises(NoNodeInRegion):
        await directory.place("c2", far, region="dc3")


async def test_a_dead_nodes_consult_is_taken_over_once_where_a_client_returns(
    redis_client: aioredis.Redis,
) -> None:
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=0.5)
    doomed, a, b = node("doomed"), node("a", forwarded=9), node("b")
    await directory.heartbeat(doomed)
    assert (await directory.place("c1", doomed)).node.node_id == "doomed"
    await asyncio.sleep(0.7)  # doomed stops beating
    for each in (a, b):
        await directory.heartbeat(each)
    # A client came back through a: a takes the consult, though b is idler, and says from whom.
    first, second = await asyncio.gather(directory.place("c1", a), directory.place("c1", b))
    assert {first.node.node_id, second.node.node_id} == {first.node.node_id}
    assert [p.taken_over_from for p in (first, second)].count("doomed") == 1
    assert await directory.dead_nodes() == ["doomed"]
    assert await directory.dead_nodes() == []  # reported to one survivor only


async def test_a_node_renews_only_its_own_claims(redis_client: aioredis.Redis) -> None:
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=5, claim_ttl_seconds=1)
    a, b = node("a"), node("b", forwarded=9)
    for each in (a, b):
        await directory.heartbeat(each)
    assert (await directory.place("c1", a)).node.node_id == "a"
    await directory.renew(["c1"], b)  # b believes it hosts c1 (a stale view): no effect
    assert await redis_client.get("test:media:c1") == "a"
    await directory.renew(["c1"], a)
    assert await redis_client.ttl("test:media:c1") == 1


async def test_a_node_that_leaves_hands_its_consults_over_at_once(
    redis_client: aioredis.Redis,
) -> None:
    # Ten seconds before a death would be noticed: a node that stops in order must not need them.
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=10)
    a, b = node("a"), node("b")  # equal: each consult goes on the node its client reached
    for each in (a, b):
        await directory.heartbeat(each)
    assert (await directory.place("c1", a)).node.node_id == "a"
    assert (await directory.place("c2", b)).node.node_id == "b"
    await directory.leave(a, ["c1", "c2"])  # a stale view of c2: b's claim stays
    assert [n.node_id for n in await directory.live_nodes()] == ["b"]
    assert await redis_client.get("test:media:c2") == "b"
    moved = await directory.place("c1", b)
    assert (moved.node.node_id, moved.taken_over_from) == ("b", None)
    assert await directory.dead_nodes() == []  # nothing left behind to recover


async def test_a_node_of_a_foreign_origin_is_never_given_a_consult(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # The cluster's origins: a.test and b.test. "rogue" announced itself (it reached Redis) with
    # a URL elsewhere, idle, the least-loaded node: clients would be sent to it.
    origins = ["http://a.test", "http://b.test"]
    directory = RedisNodes(
        redis_client, prefix="test", dead_after_seconds=5, trusted_origins=origins
    )
    a, b, rogue = node("a", forwarded=9), node("b", forwarded=5), node("rogue")
    for each in (a, b, rogue):
        await directory.heartbeat(each)
    assert (await directory.place("c1", a)).node.node_id == "b"
    assert (await directory.place("c2", rogue)).node.node_id == "b"
    # A consult the rogue node claimed itself is taken back (not as from a dead node).
    await redis_client.set("test:media:c3", "rogue")
    moved = await directory.place("c3", a)
    assert (moved.node.node_id, moved.taken_over_from) == ("a", None)
    assert await redis_client.get("test:media:c3") == "a"
    passed_over = [r for r in caplog.records if r.getMessage().startswith("node passed over")]
    assert [(r.node, r.origin) for r in passed_over] == [("rogue", "http://rogue.test")]  # type: ignore[attr-defined]
    # Nothing trusted left: a clear refusal, never the rogue node.
    await directory.leave(a, [])
    await directory.leave(b, [])
    with pytest.raises(NoTrustedNode):
        await directory.place("c4", rogue)


async def test_consults_placed_between_two_heartbeats_are_spread_over_the_nodes(
    redis_client: aioredis.Redis,
) -> None:
    """A node's load is as old as its heartbeat: the consults placed on it since count too, so
    a burst of first joins does not all go to the node that was idle at the last heartbeat."""
    directory = RedisNodes(redis_client, prefix="test", dead_after_seconds=5)
    a, b = node("a", forwarded=3), node("b")
    for each in (a, b):
        await directory.heartbeat(each)
    placed = [(await directory.place(f"c{n}", a)).node.node_id for n in range(13)]
    assert placed[:3] == ["b", "b", "b"], "the idle node first"
    assert (placed.count("a"), placed.count("b")) == (5, 8)
    await directory.heartbeat(node("b", forwarded=20))  # its load counts its consults now
    assert (await directory.place("c-next", a)).node.node_id == "a"
