"""The room registry: who is present in which consult (its media's node: ``rooms.nodes``).

Two implementations behind one interface (LiveKit's local and Redis routers): ``LocalRegistry``
for one process, ``RedisRegistry`` when several processes serve the same consults.
"""

from __future__ import annotations

import json
import time
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

    async def clear_presence(
        self, consult_id: str, participant_id: str, sid: str | None = None
    ) -> None:
        """Record that a participant is gone; with ``sid``, only if that connection still holds
        the participant (a rejoin elsewhere is kept). Clearing twice is harmless."""

    async def refresh_presence(self, consult_id: str, held: dict[str, Presence]) -> None:
        """Assert again the presence of participants this process holds (by participant id),
        keeping it from expiring and restoring it after the registry lost it; a participant
        whom another connection holds now is left alone."""

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        """Everyone present in a consult, by participant id."""

    async def clear_consult(self, consult_id: str) -> None:
        """Forget a consult's live state (it ended)."""

    async def close(self) -> None:
        """Release connections."""


#: How often a process asserts its participants' presence again (well inside PRESENCE_TTL_SECONDS).
PRESENCE_REFRESH_SECONDS = 10.0
#: How long a presence lives in Redis without being asserted again: a process that died, or
#: lost Redis while its participants left, leaves no ghost for longer than this.
PRESENCE_TTL_SECONDS = 30


class LocalRegistry:
    """The registry of a single process, in memory."""

    def __init__(self) -> None:
        self._presence: dict[str, dict[str, Presence]] = {}

    async def set_presence(self, consult_id: str, participant_id: str, presence: Presence) -> None:
        self._presence.setdefault(consult_id, {})[participant_id] = presence

    async def clear_presence(
        self, consult_id: str, participant_id: str, sid: str | None = None
    ) -> None:
        present = self._presence.get(consult_id, {})
        if participant_id in present and sid in (None, present[participant_id].sid):
            del present[participant_id]

    async def refresh_presence(self, consult_id: str, held: dict[str, Presence]) -> None:
        present = self._presence.setdefault(consult_id, {})
        for participant_id, presence in held.items():
            if present.setdefault(participant_id, presence).sid == presence.sid:
                present[participant_id] = presence

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        return dict(self._presence.get(consult_id, {}))

    async def clear_consult(self, consult_id: str) -> None:
        self._presence.pop(consult_id, None)

    async def close(self) -> None:
        self._presence.clear()


#: Delete a participant's presence if ``ARGV[2]`` (a sid) still holds it, or any if it is empty.
_CLEAR_PRESENCE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and (ARGV[2] == '' or cjson.decode(raw).sid == ARGV[2]) then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

#: Write each (participant id, presence) of ARGV[2..] unless another sid holds the participant;
#: ARGV[1] is the hash's lifetime in seconds.
_REFRESH_PRESENCE = """
for i = 2, #ARGV, 2 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if not raw or cjson.decode(raw).sid == cjson.decode(ARGV[i + 1]).sid then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('EXPIRE', KEYS[1], ARGV[1])
"""


class RedisRegistry:
    """The registry in Redis, shared by several processes.

    Each presence carries its expiry (``expires_at``, seconds since the epoch): the process
    holding the participant asserts it again every :data:`PRESENCE_REFRESH_SECONDS`, and readers
    ignore expired ones, so a participant whose departure never reached Redis
    disappears by itself. The whole hash expires when nobody asserts anything in it. Expiry
    times come from each process's clock: the processes' clocks must agree (NTP) to well
    within :data:`PRESENCE_TTL_SECONDS`.

    :param client: a Redis client returning str values (every call with a timeout:
        ``config.redis.connect_redis``).
    :param prefix: key prefix, so that several deployments may share one Redis.
    :param presence_ttl_seconds: how long a presence lives without being asserted again.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "teleconsult",
        presence_ttl_seconds: int = PRESENCE_TTL_SECONDS,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._presence_ttl = presence_ttl_seconds
        self._clear_script = client.register_script(_CLEAR_PRESENCE)
        self._refresh_script = client.register_script(_REFRESH_PRESENCE)

    def _stored(self, presence: Presence) -> str:
        return json.dumps({**asdict(presence), "expires_at": time.time() + self._presence_ttl})

    def _presence_key(self, consult_id: str) -> str:
        return f"{self._prefix}:presence:{consult_id}"

    async def set_presence(self, consult_id: str, participant_id: str, presence: Presence) -> None:
        key = self._presence_key(consult_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, participant_id, self._stored(presence))
            pipe.expire(key, self._presence_ttl)
            await pipe.execute()

    async def clear_presence(
        self, consult_id: str, participant_id: str, sid: str | None = None
    ) -> None:
        await self._clear_script(
            keys=[self._presence_key(consult_id)], args=[participant_id, sid or ""]
        )

    async def refresh_presence(self, consult_id: str, held: dict[str, Presence]) -> None:
        if not held:
            return
        args: list[str | int] = [self._presence_ttl]
        for participant_id, presence in held.items():
            args += [participant_id, self._stored(presence)]
        await self._refresh_script(keys=[self._presence_key(consult_id)], args=args)

    async def presence(self, consult_id: str) -> dict[str, Presence]:
        key = self._presence_key(consult_id)
        # The client decodes replies (``decode_responses``): str, though typed bytes | str.
        raw = cast(dict[str, str], await self._redis.hgetall(key))
        now, present = time.time(), {}
        for participant_id, value in raw.items():
            fields = json.loads(value)
            if fields.pop("expires_at", 0) > now:
                present[participant_id] = Presence(**fields)
        return present

    async def clear_consult(self, consult_id: str) -> None:
        await self._redis.delete(self._presence_key(consult_id))

    async def close(self) -> None:
        await self._redis.aclose()
