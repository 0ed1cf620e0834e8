"""The room registry: who is present in which consult, and which process hosts its media.

Two implementations behind one interface (LiveKit's local and Redis routers): ``LocalRegistry``
for one process, ``RedisRegistry`` when several processes serve the same consults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol, cast

import redis.asyncio as aioredis

#: The mute state of a participant who muted nothing.
UNMUTED: dict[str, bool] = {"microphone": False, "camera": False}


@dataclass(frozen=True, slots=True)
class Presence:
    """Where a connected participant stands right now.

    :param status: ``waiting`` in the lobby, ``joined``, or ``reconnecting``: the connection
        dropped and the seat is kept for the reconnection grace period.
    :param sid: the Socket.IO connection that holds the participant (on any process).
    :param muted: the sources the participant has muted (``microphone``, ``camera``).
    """

    status: str
    sid: str
    muted: dict[str, bool] = field(default_factory=lambda: dict(UNMUTED))

    def with_muted(self, source: str, muted: bool) -> Presence:
        """A copy with one source's mute state changed."""
        return replace(self, muted={**self.muted, source: muted})


class RoomRegistry(Protocol):
    """Live state of consults shared by every process that serves them."""

    async def set_presence(self, consult_id: str, participant_id: str, presence: Presence) -> None:
        """Record that a participant is present (waiting or joined)."""

    async def clear_presence(self, consult_id: str, participant_id: str) -> None:
        """Record that a participant is gone."""

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        """Everyone present in a consult, by participant id."""

    async def clear_consult(self, consult_id: str) -> None:
        """Forget a consult's live state (it ended)."""

    async def claim_media_node(self, consult_id: str, node_id: str) -> str:
        """Name ``node_id`` as the media host of the consult unless a live node already is.

        :returns: the node that hosts the consult's media.
        """

    async def close(self) -> None:
        """Release connections."""


#: How often a process renews its media-node claims (well inside RedisRegistry's claim TTL).
CLAIM_RENEWAL_SECONDS = 10.0


class LocalRegistry:
    """The registry of a single process, in memory."""

    def __init__(self) -> None:
        self._presence: dict[str, dict[str, Presence]] = {}
        self._media_nodes: dict[str, str] = {}

    async def set_presence(self, consult_id: str, participant_id: str, presence: Presence) -> None:
        self._presence.setdefault(consult_id, {})[participant_id] = presence

    async def clear_presence(self, consult_id: str, participant_id: str) -> None:
        self._presence.get(consult_id, {}).pop(participant_id, None)

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        return dict(self._presence.get(consult_id, {}))

    async def clear_consult(self, consult_id: str) -> None:
        self._presence.pop(consult_id, None)
        self._media_nodes.pop(consult_id, None)

    async def claim_media_node(self, consult_id: str, node_id: str) -> str:
        return self._media_nodes.setdefault(consult_id, node_id)

    async def close(self) -> None:
        self._presence.clear()
        self._media_nodes.clear()


class RedisRegistry:
    """The registry in Redis, shared by several processes.

    :param client: a Redis client returning str values.
    :param prefix: key prefix, so that several deployments may share one Redis.
    :param media_ttl_seconds: how long a media-node claim lives without renewal; a dead process's
        consults move to a live one once it expires.
    """

    def __init__(
        self, client: aioredis.Redis, prefix: str = "teleconsult", media_ttl_seconds: int = 30
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._media_ttl = media_ttl_seconds

    def _presence_key(self, consult_id: str) -> str:
        return f"{self._prefix}:presence:{consult_id}"

    def _media_key(self, consult_id: str) -> str:
        return f"{self._prefix}:media:{consult_id}"

    async def set_presence(self, consult_id: str, participant_id: str, presence: Presence) -> None:
        await self._redis.hset(
            self._presence_key(consult_id), participant_id, json.dumps(asdict(presence))
        )

    async def clear_presence(self, consult_id: str, participant_id: str) -> None:
        await self._redis.hdel(self._presence_key(consult_id), participant_id)

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        # The client decodes replies (``decode_responses``): str, though typed bytes | str.
        raw = cast(dict[str, str], await self._redis.hgetall(self._presence_key(consult_id)))
        return {pid: Presence(**json.loads(value)) for pid, value in raw.items()}

    async def clear_consult(self, consult_id: str) -> None:
        await self._redis.delete(self._presence_key(consult_id), self._media_key(consult_id))

    async def claim_media_node(self, consult_id: str, node_id: str) -> str:
        key = self._media_key(consult_id)
        if await self._redis.set(key, node_id, nx=True, ex=self._media_ttl):
            return node_id
        owner = cast(str | None, await self._redis.get(key))  # a decoded reply, as above
        if owner == node_id:
            await self._redis.expire(key, self._media_ttl)
            return node_id
        if owner is None:  # expired between the two calls
            return await self.claim_media_node(consult_id, node_id)
        return owner

    async def close(self) -> None:
        await self._redis.aclose()
