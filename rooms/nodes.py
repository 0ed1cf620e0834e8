"""The cluster's nodes: who serves, how loaded each is, and on which node a consult's media goes.

Two implementations behind one interface, like the room registry: ``LocalNodes`` for one
process (it is the only node), ``RedisNodes`` when several processes serve. A node announces
itself with a heartbeat key that expires: a node whose key is gone is dead, no consensus needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from rooms.errors import DomainError

logger = logging.getLogger(__name__)


class NoNodeInRegion(DomainError):
    """No live node may host the consult's media (its region has none)."""

    code, status = "no_node_in_region", 503


class NoTrustedNode(DomainError):
    """No live node whose URL is of the cluster's origins may host the consult's media."""

    code, status = "no_trusted_node", 503


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """What a node carries now.

    :param consults: consults whose media it hosts or whose participants are seated there
        (placed, not published yet); as the directory reads it, also those placed on it since
        its heartbeat.
    :param publishers: participants publishing to it.
    :param forwarded: tracks it forwards (one per subscriber of each track).
    :param cpu: its process's share of one core over the last interval (0.0-1.0+).
    """

    consults: int = 0
    publishers: int = 0
    forwarded: int = 0
    cpu: float = 0.0

    @property
    def score(self) -> float:
        """One number to compare nodes by: the forwarded streams dominate a node's cost."""
        return self.forwarded + 2 * self.publishers + self.consults + 100 * self.cpu


@dataclass(frozen=True, slots=True)
class Node:
    """One serving process.

    :param node_id: its id (random at start).
    :param url: the URL clients reach its signaling at.
    :param media_addresses: the addresses its ICE candidates are gathered on.
    :param region: an optional label (a data centre) that placement may require.
    :param load: what it carries, as of its last heartbeat.
    """

    node_id: str
    url: str
    media_addresses: list[str] = field(default_factory=list)
    region: str | None = None
    load: NodeLoad = field(default_factory=NodeLoad)

    @property
    def origin(self) -> str:
        """The origin of its URL (``scheme://host[:port]``), as pages and CSP compare them."""
        url = urlsplit(self.url)
        return f"{url.scheme}://{url.netloc}"

    def as_json(self) -> str:
        """The node as stored in its heartbeat."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Node:
        """The node a heartbeat stored."""
        fields = json.loads(raw)
        return cls(**{**fields, "load": NodeLoad(**fields["load"])})


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a consult's media is.

    :param node: the node hosting it.
    :param taken_over_from: the dead node it was placed on before, when this placement
        moved it (its recordings need recovery), else None.
    """

    node: Node
    taken_over_from: str | None = None


class NodeDirectory(Protocol):
    """The live nodes of the cluster and the placement of consults on them."""

    async def heartbeat(self, node: Node) -> None:
        """Announce that ``node`` lives, with its load; it is dead if this stops for the
        directory's dead-node timeout."""

    async def live_nodes(self) -> list[Node]:
        """The nodes whose heartbeat is current."""

    async def place(self, consult_id: str, me: Node, region: str | None = None) -> Placement:
        """The node hosting a consult's media: the current one while it lives; a consult not
        placed yet goes on the least-loaded live node, one whose node died on ``me`` (both of
        ``region`` when given); claimed atomically. A node whose URL is not of the cluster's
        origins is passed over, and a consult placed on one is placed again.

        :raises NoNodeInRegion: when no live node is in ``region``.
        :raises NoTrustedNode: when no live node (of ``region``) is of the cluster's origins.
        """

    async def renew(self, consult_ids: list[str], me: Node) -> None:
        """Keep the claims ``me`` holds (the consults whose media it hosts)."""

    async def release(self, consult_id: str) -> None:
        """Forget a consult's placement (it ended)."""

    async def dead_nodes(self) -> list[str]:
        """Nodes that were announced and are dead now, each reported once across the cluster
        (whoever receives it recovers what the dead node left)."""

    async def leave(self, node: Node, consult_ids: list[str]) -> None:
        """Withdraw ``node`` (it stops in order) and release its claims on ``consult_ids``, so
        that the next arrival places them on a live node at once."""

    async def announce_ended(self, consult_id: str) -> None:
        """Tell every node that a consult ended (its media node closes it)."""

    def ended(self) -> AsyncIterator[str]:
        """The consults other nodes announced ended, as they come (forever)."""


class LocalNodes:
    """The directory of a single process: it is the only node and hosts every consult."""

    def __init__(self) -> None:
        self._me: Node | None = None

    async def heartbeat(self, node: Node) -> None:
        self._me = node

    async def live_nodes(self) -> list[Node]:
        return [self._me] if self._me is not None else []

    async def place(self, consult_id: str, me: Node, region: str | None = None) -> Placement:
        return Placement(me)

    async def renew(self, consult_ids: list[str], me: Node) -> None:
        return None

    async def release(self, consult_id: str) -> None:
        return None

    async def dead_nodes(self) -> list[str]:
        return []

    async def leave(self, node: Node, consult_ids: list[str]) -> None:
        self._me = None

    async def announce_ended(self, consult_id: str) -> None:
        return None  # the only node ended it itself

    async def ended(self) -> AsyncIterator[str]:
        await asyncio.Event().wait()  # nobody else announces anything
        yield ""  # pragma: no cover - never reached


#: KEYS: the consult's placement key, the node-key prefix, the placed-count prefix. ARGV: the
#: candidate node id, the claim's lifetime (s), a live owner to displace (one of a foreign
#: origin) or ''. Counts the claim among the candidate's consults placed since its heartbeat.
#: Returns {owner, previous owner if it was dead else ''}.
_PLACE = """
local owner = redis.call('GET', KEYS[1])
local alive = owner and redis.call('EXISTS', KEYS[2] .. owner) == 1
if alive and owner ~= ARGV[3] then
  return {owner, ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('INCR', KEYS[3] .. ARGV[1])
redis.call('EXPIRE', KEYS[3] .. ARGV[1], ARGV[2])
if alive then
  return {ARGV[1], ''}
end
return {ARGV[1], owner or ''}
"""

#: KEYS: placement keys. ARGV: the node id, the claim's lifetime (s). Extends only the node's own.
_RENEW = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return 0
"""

#: KEYS: placement keys. ARGV: the node id. Deletes only the node's own.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
return 0
"""


class RedisNodes:
    """The directory in Redis.

    A node's heartbeat is a key ``<prefix>:node:<id>`` that expires after ``dead_after_seconds``;
    every announced node is also in the set ``<prefix>:nodes``, so a dead one is noticed (and
    taken out of the set by exactly one survivor). A consult's placement is the key
    ``<prefix>:media:<consult>`` (the room registry's media claim), moved only when its node died.
    ``<prefix>:placed:<id>`` counts the consults placed on a node since its last heartbeat, which
    its load does not show yet: a burst of first joins between two heartbeats is spread over the
    nodes instead of all going to the one that was least loaded at the last heartbeat.

    :param client: a Redis client returning str values.
    :param prefix: key prefix, shared with the room registry.
    :param dead_after_seconds: how long a node lives without a heartbeat.
    :param claim_ttl_seconds: how long a placement lives without renewal.
    :param trusted_origins: the origins a node's URL must be of to host consults (clients are
        sent there); None: any.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "teleconsult",
        dead_after_seconds: float = 10.0,
        claim_ttl_seconds: int = 30,
        trusted_origins: Collection[str] | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._trusted_origins = frozenset(trusted_origins) if trusted_origins is not None else None
        #: Nodes already logged as of a foreign origin (once each, not at every placement).
        self._foreign: set[str] = set()
        self._dead_after_ms = int(dead_after_seconds * 1000)
        self._claim_ttl = claim_ttl_seconds
        self._place_script = client.register_script(_PLACE)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)

    def _node_key(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}"

    def _placed_key(self, node_id: str) -> str:
        return f"{self._prefix}:placed:{node_id}"

    def _media_key(self, consult_id: str) -> str:
        return f"{self._prefix}:media:{consult_id}"

    @property
    def _members_key(self) -> str:
        return f"{self._prefix}:nodes"

    @property
    def _ended_channel(self) -> str:
        return f"{self._prefix}:consult-ended"

    async def heartbeat(self, node: Node) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._node_key(node.node_id), node.as_json(), px=self._dead_after_ms)
            pipe.sadd(self._members_key, node.node_id)
            pipe.delete(self._placed_key(node.node_id))  # its load counts them now
            await pipe.execute()

    async def live_nodes(self) -> list[Node]:
        """The live nodes, each one's consults counting those placed on it since its heartbeat."""
        members = sorted(cast(set[str], await self._redis.smembers(self._members_key)))
        if not members:
            return []
        keys = [self._node_key(m) for m in members] + [self._placed_key(m) for m in members]
        raw = cast(list[str | None], await self._redis.mget(keys))
        live = []
        for value, placed in zip(raw[: len(members)], raw[len(members) :], strict=True):
            if value is not None:
                node = Node.from_json(value)
                consults = node.load.consults + int(placed or 0)
                live.append(replace(node, load=replace(node.load, consults=consults)))
        return live

    async def _node(self, node_id: str) -> Node | None:
        raw = cast(str | None, await self._redis.get(self._node_key(node_id)))
        return Node.from_json(raw) if raw is not None else None

    def _trusted(self, node: Node) -> bool:
        """Whether ``node``'s URL is of the cluster's origins (a refusal is logged once)."""
        if self._trusted_origins is None or node.origin in self._trusted_origins:
            return True
        if node.node_id not in self._foreign:
            self._foreign.add(node.node_id)
            logger.warning(
                "node passed over: its URL is not of the cluster's origins",
                extra={"node": node.node_id, "origin": node.origin},
            )
        return False

    async def place(self, consult_id: str, me: Node, region: str | None = None) -> Placement:
        owner = cast(str | None, await self._redis.get(self._media_key(consult_id)))
        displaced = ""
        if owner is not None:
            current = me if owner == me.node_id else await self._node(owner)
            if current is not None:
                if self._trusted(current):
                    return Placement(current)
                displaced = owner
        live = [n for n in await self.live_nodes() if region is None or n.region == region]
        if not live:
            raise NoNodeInRegion("No live server may host this consult's media")
        live = [n for n in live if self._trusted(n)]
        if not live:
            raise NoTrustedNode("No server of this cluster's addresses may host this consult")
        if owner is not None and any(n.node_id == me.node_id for n in live):
            # Taken over from a dead node: here, where a returning client arrived, so that
            # the node that recovers its recording is the one that records on.
            candidate = me
        else:
            candidate = min(live, key=lambda n: (n.load.score, n.node_id != me.node_id, n.node_id))
        owner, previous = cast(
            list[str],
            await self._place_script(
                keys=[self._media_key(consult_id), self._node_key(""), self._placed_key("")],
                args=[candidate.node_id, self._claim_ttl, displaced],
            ),
        )
        node = next((n for n in live if n.node_id == owner), None) or await self._node(owner)
        if node is None:  # the winner of a race died at once: place again
            return await self.place(consult_id, me, region)
        if not self._trusted(node):  # a foreign node claimed it meanwhile: the next try moves it
            raise NoTrustedNode("No server of this cluster's addresses may host this consult")
        return Placement(node, previous or None)

    async def renew(self, consult_ids: list[str], me: Node) -> None:
        if not consult_ids:
            return
        keys = [self._media_key(consult_id) for consult_id in consult_ids]
        await self._renew_script(keys=keys, args=[me.node_id, self._claim_ttl])

    async def release(self, consult_id: str) -> None:
        await self._redis.delete(self._media_key(consult_id))

    async def dead_nodes(self) -> list[str]:
        members = sorted(cast(set[str], await self._redis.smembers(self._members_key)))
        dead = []
        for node_id in members:
            if not await self._redis.exists(self._node_key(node_id)):
                # SREM answers 1 to one caller only: that survivor recovers the node's leavings.
                if await self._redis.srem(self._members_key, node_id):
                    dead.append(node_id)
        return dead

    async def leave(self, node: Node, consult_ids: list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._node_key(node.node_id))
            pipe.srem(self._members_key, node.node_id)
            await pipe.execute()
        if consult_ids:
            keys = [self._media_key(consult_id) for consult_id in consult_ids]
            await self._release_script(keys=keys, args=[node.node_id])

    async def announce_ended(self, consult_id: str) -> None:
        await self._redis.publish(self._ended_channel, consult_id)

    async def ended(self) -> AsyncIterator[str]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._ended_channel)
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "message":
                    yield str(message["data"])
        finally:
            await pubsub.aclose()
