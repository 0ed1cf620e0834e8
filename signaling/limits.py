"""Rate limits and quotas of the edge: who may do how much, counted with the ``limits`` library.

Every limit is a setting in the ``limits`` notation (``20 per 4 seconds``, ``30/minute;300/hour``)
counted in a moving window. Limits per identity and per address are *shared*: counted in Redis
when ``TELECONSULT_REDIS_URL`` is set, so they hold across processes. Limits per Socket.IO
connection are counted in the process, where the connection lives.

A Redis outage never turns into a 500 and never lifts the protection: shared limits fall back to
this process's own counters (with a log line and ``teleconsult_limiter_fallbacks_total``) and try
Redis again a few seconds later. During the outage a limit holds per process, so it is as many
times looser as there are processes; failing open instead would leave the database's writes (every
chat message is one) unguarded exactly when the infrastructure is already in trouble.

The sockets an identity holds are a quota, not a rate: each socket is a claim in Redis (renewed
while the socket lives, so a crashed process's claims expire), or counted in the process.

Socket.IO events are limited in :class:`signaling.protocol.ClientEvents` (every event, plus an
event's own limit), REST routes by :func:`rate_limit_middleware` (every write, plus a route's own
limit named in its declaration).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

import redis.asyncio as aioredis
from aiohttp import web
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as SharedRateLimiter
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter as LocalRateLimiter

from config.redis import REDIS_MAX_CONNECTIONS
from config.settings import Settings
from rooms.errors import DomainError
from rooms.identity import Identity
from signaling.addresses import client_address
from signaling.api.bearer import caller
from signaling.errors import RateLimited
from signaling.metrics import LIMITER_FALLBACKS

logger = logging.getLogger(__name__)

#: How long shared limits are counted in the process after Redis failed, before trying it again.
REDIS_RETRY_SECONDS = 5.0
#: How long a socket's claim in Redis lives unless renewed (a crashed process's claims expire).
SOCKET_CLAIM_SECONDS = 90
#: How often a process renews the claims of the sockets it holds.
SOCKET_RENEWAL_SECONDS = 30

#: The prefix of the ``limits`` library's counters in Redis (its ``key_prefix``).
LIMITS_KEY_PREFIX = "teleconsult:limits"

# One round trip for several uses: each moving window of KEYS[1..n] (the ``limits`` library's own
# counters, counted as its acquire_moving_window script does for one use), in order, stopping at
# the first that is full; then, unless one was full and if KEYS[n+1] is given, the socket claim:
# an identity's live sockets (claims not expired) counted and one added unless the bound is
# reached, atomically.
# ARGV: timestamp, n, then limit and expiry per window, then (for a claim) now, expiry, bound,
# member, ttl. Returns {the 1-based index of the full window or 0, the claims held before or -1}.
_HIT = """
local timestamp = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
    local limit = tonumber(ARGV[1 + 2 * i])
    local expiry = tonumber(ARGV[2 + 2 * i])
    local entry = redis.call('LINDEX', KEYS[i], limit - 1)
    if entry and tonumber(entry) >= timestamp - expiry then
        return {i, -1}
    end
    redis.call('LPUSH', KEYS[i], ARGV[1])
    redis.call('LTRIM', KEYS[i], 0, limit - 1)
    redis.call('EXPIRE', KEYS[i], expiry)
end
if #KEYS == n then
    return {0, -1}
end
local claims = KEYS[n + 1]
local base = 3 + 2 * n
redis.call('ZREMRANGEBYSCORE', claims, '-inf', ARGV[base])
local held = redis.call('ZCARD', claims)
if held < tonumber(ARGV[base + 2]) then
    redis.call('ZADD', claims, ARGV[base + 1], ARGV[base + 3])
    redis.call('EXPIRE', claims, ARGV[base + 4])
end
return {0, held}
"""

#: How many refused keys are remembered so that a flood is logged once, not per refusal.
MAX_REFUSALS_REMEMBERED = 10_000
#: How long one Redis call of the limiter may take before it counts as an outage.
REDIS_TIMEOUT_SECONDS = 0.5


class TooManySockets(DomainError):
    """An identity already holds as many Socket.IO connections as it may."""

    code, status = "too_many_sockets", 429


class TooManyParticipants(DomainError):
    """A consult would have more participants than a consult may have."""

    code, status = "too_many_participants", 422


class SdpTooLarge(DomainError):
    """A session description longer than the server accepts."""

    code, status = "sdp_too_large", 413


@dataclass(frozen=True)
class Limit:
    """One named limit: its rates, and whether it is counted across processes.

    :param name: The limit's name, part of its counters' keys.
    :param rates: Every rate that must hold (``30/minute;300/hour`` is two).
    :param shared: Counted in Redis when configured (per identity, per address); else in the
        process (per connection).
    """

    name: str
    rates: tuple[RateLimitItem, ...]
    shared: bool


#: One use of a limit: its name and whose use it is.
Use = tuple[str, Sequence[str]]


class _Window(NamedTuple):
    """One rate of a limit, counted for one key."""

    limit: Limit
    rate: RateLimitItem
    key: tuple[str, ...]


class _Claim(NamedTuple):
    """A socket's claim in Redis: the identity's claims key and the script's arguments."""

    key: str
    args: list[float | int | str]


def limits_from_settings(settings: Settings) -> dict[str, Limit]:
    """The limits of a deployment, by name (a bad rate string is refused at start-up)."""

    def limit(name: str, rates: str, shared: bool = True) -> Limit:
        return Limit(name, tuple(parse_many(rates)), shared)

    return {
        entry.name: entry
        for entry in (
            limit("rest_writes", settings.rate_limit_rest_writes),
            limit("rest_writes_per_address", settings.rate_limit_rest_writes_per_address),
            limit("scheduling", settings.rate_limit_scheduling),
            limit("connects", settings.rate_limit_connects),
            limit("connects_per_address", settings.rate_limit_connects_per_address),
            limit("events", settings.rate_limit_events),
            limit("chat", settings.rate_limit_chat),
            limit("ice_candidates", settings.rate_limit_ice_candidates, shared=False),
        )
    }


def redis_storage_uri(redis_url: str) -> str:
    """The ``limits`` storage URI of a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    scheme, _, rest = redis_url.partition("://")
    return f"async+{'redis+unix' if scheme == 'unix' else scheme}://{rest}"


def identity_key(identity: Identity) -> str:
    """An identity's key in counters: ``(hospital, sub)``, never ``sub`` alone."""
    return f"{identity.hospital}/{identity.sub}"


class Limiter:
    """Counts uses against the deployment's limits, and sockets against their quota; refuses the
    one too many.

    :param limits: The limits by name (:func:`limits_from_settings`).
    :param redis_url: Where shared limits are counted; None: in the process.
    """

    def __init__(self, limits: Mapping[str, Limit], redis_url: str | None = None) -> None:
        self.limits = dict(limits)
        # In-process counting is a few microseconds of CPU without I/O: the synchronous storage,
        # since the asynchronous one hops to a thread per key to expire old entries.
        self._local = LocalRateLimiter(MemoryStorage())
        self._shared: SharedRateLimiter | None = None
        self._pool: aioredis.ConnectionPool | None = None
        self._redis: aioredis.Redis | None = None
        #: Names this process's socket claims in Redis.
        self._node = uuid.uuid4().hex
        if redis_url:
            self._pool = aioredis.ConnectionPool.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                max_connections=REDIS_MAX_CONNECTIONS,
            )
            self._redis = aioredis.Redis(connection_pool=self._pool)
            self._hit_script = self._redis.register_script(_HIT)
            storage = RedisStorage(
                redis_storage_uri(redis_url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=LIMITS_KEY_PREFIX,
                # A documented option, though limits types its options as scalars.
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
            self._shared = SharedRateLimiter(storage)
        self._redis_down_until = 0.0
        #: Until when each refused ``(limit, *key)`` is known to be refused: logged once a window.
        self._refusing: dict[tuple[str, ...], float] = {}

    async def close(self) -> None:
        """Close the connections to Redis."""
        if self._pool is not None:
            await self._pool.disconnect()

    async def hit(self, name: str, *key: str) -> None:
        """Count one use of limit ``name`` by ``key``.

        :param name: The limit.
        :param key: Whose use it is (an identity's key, an address, a connection id).
        :raises RateLimited: when one of the limit's rates is used up (the use then counts
            against none of the rates after it).
        """
        await self.hit_all([(name, key)])

    async def hit_all(self, uses: Iterable[Use]) -> None:
        """Count one use of each ``(limit, key)``, in order, as :meth:`hit` does one after the
        other, but the shared ones in one Redis round trip.

        :raises RateLimited: at the first rate used up (the uses after it count against none).
        """
        await self._hit(uses, None)

    async def open_socket(
        self, who: str, sid: str, held_here: int, bound: int, uses: Iterable[Use] = ()
    ) -> None:
        """Count ``uses`` (as :meth:`hit_all`), then claim one more socket for identity ``who``,
        unless it holds ``bound`` already: one Redis round trip for both.

        Sockets are counted in Redis when configured (a claim per socket, renewed by
        :meth:`renew_sockets`, so a crashed process's claims expire), else (and while Redis
        fails) in this process.

        :param who: The identity's key.
        :param sid: The new socket.
        :param held_here: How many sockets of ``who`` this process holds.
        :param bound: How many sockets an identity may hold.
        :param uses: The connect's rates, counted first (no socket is claimed if one refuses).
        :raises RateLimited: when one of ``uses`` is used up.
        :raises TooManySockets: when the identity holds ``bound`` sockets already.
        """
        claim = None
        if self._redis_up():
            now = time.time()
            claim = _Claim(
                self._sockets_key(who),
                [now, now + SOCKET_CLAIM_SECONDS, bound, self._member(sid), SOCKET_CLAIM_SECONDS],
            )
        held = await self._hit(uses, claim)
        if held is None:
            held = held_here
        if held >= bound:
            raise TooManySockets(f"{held} connections of this identity are open already")

    async def _hit(self, uses: Iterable[Use], claim: _Claim | None) -> int | None:
        """Count ``uses`` in order, the shared ones that follow each other in one round trip
        (with ``claim`` after the last); the claims held before, or None when not claimed in
        Redis."""
        batch: list[_Window] = []
        for name, key in uses:
            limit = self.limits[name]
            for rate in limit.rates:
                window = _Window(limit, rate, tuple(key))
                if limit.shared and self._redis_up():
                    batch.append(window)
                else:
                    await self._count_shared(batch, None)
                    batch = []
                    await self._count_here(window)
        return await self._count_shared(batch, claim)

    async def _count_shared(self, batch: list[_Window], claim: _Claim | None) -> int | None:
        """One round trip: the windows of ``batch`` in order, then the claim (see ``_HIT``)."""
        if not batch and claim is None:
            return None
        if self._redis is None or not self._redis_up():
            for window in batch:
                await self._count_here(window)
            return None
        keys = [f"{LIMITS_KEY_PREFIX}:{w.rate.key_for(w.limit.name, *w.key)}" for w in batch]
        args: list[float | int | str] = [time.time(), len(batch)]
        for window in batch:
            args += [window.rate.amount, window.rate.get_expiry()]
        if claim is not None:
            keys.append(claim.key)
            args += claim.args
        try:
            full, held = await self._hit_script(keys=keys, args=args)
        except aioredis.RedisError as exc:
            self._redis_failed(exc)
            for window in batch:
                await self._count_here(window)
            return None
        if full:
            await self._refuse(batch[int(full) - 1])
        return int(held) if int(held) >= 0 else None

    async def _count_here(self, window: _Window) -> None:
        """Count one use in this process's own counters."""
        if not self._local.hit(window.rate, window.limit.name, *window.key):
            await self._refuse(window)

    async def _refuse(self, window: _Window) -> NoReturn:
        limit, rate, key = window
        retry_after = await self._retry_after(limit, rate, key)
        self._log_refusal(limit.name, key, retry_after)
        raise RateLimited(f"Too many requests ({limit.name}: {rate}); try again later", retry_after)

    async def _retry_after(self, limit: Limit, rate: RateLimitItem, key: tuple[str, ...]) -> int:
        shared = self._shared_limiter(limit)
        try:
            if shared is not None:
                stats = await shared.get_window_stats(rate, limit.name, *key)
            else:
                stats = self._local.get_window_stats(rate, limit.name, *key)
        except StorageError as exc:
            self._redis_failed(exc)
            return rate.get_expiry()
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def close_socket(self, who: str, sid: str) -> None:
        """Give up the claim of a closed socket (a Redis failure leaves it to expire)."""
        if self._redis is None:
            return
        try:
            await self._redis.zrem(self._sockets_key(who), self._member(sid))
        except aioredis.RedisError as exc:
            self._redis_failed(exc)

    async def renew_sockets(self, sockets: Iterable[tuple[str, str]]) -> None:
        """Renew the claims of the sockets this process holds, as ``(who, sid)``."""
        if self._redis is None:
            return
        expiry = time.time() + SOCKET_CLAIM_SECONDS
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for who, sid in sockets:
                    pipe.zadd(self._sockets_key(who), {self._member(sid): expiry})
                    pipe.expire(self._sockets_key(who), SOCKET_CLAIM_SECONDS)
                await pipe.execute()
        except aioredis.RedisError as exc:
            self._redis_failed(exc)

    @staticmethod
    def _sockets_key(who: str) -> str:
        return f"teleconsult:sockets:{who}"

    def _member(self, sid: str) -> str:
        return f"{self._node}:{sid}"

    def _log_refusal(self, name: str, key: tuple[str, ...], retry_after: int) -> None:
        """Log the first refusal of a flood, not each one (a flood of log lines is one more)."""
        now, marker = time.monotonic(), (name, *key)
        if self._refusing.get(marker, 0.0) > now:
            return
        if len(self._refusing) >= MAX_REFUSALS_REMEMBERED:
            self._refusing = {k: until for k, until in self._refusing.items() if until > now}
        self._refusing[marker] = now + retry_after
        logger.warning(
            "rate limit reached",
            extra={"limit": name, "key": "/".join(key), "retry_after": retry_after},
        )

    def _shared_limiter(self, limit: Limit) -> SharedRateLimiter | None:
        if not limit.shared or not self._redis_up():
            return None
        return self._shared

    def _redis_up(self) -> bool:
        """Whether Redis counts shared limits now (configured, and not failed lately)."""
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        LIMITER_FALLBACKS.inc()
        cause = exc.storage_error if isinstance(exc, StorageError) else exc
        logger.warning(
            "Redis is unreachable: limits are counted in this process for %.0f s",
            REDIS_RETRY_SECONDS,
            extra={"error": type(cause).__name__},
        )


#: The application's limiter.
LIMITER = web.AppKey("limiter", Limiter)

#: A route's own limit, by ``(method, path)``, from its declaration (``rate_limit=``).
ROUTE_LIMITS = web.AppKey("route_limits", dict[tuple[str, str], str])

#: Methods that change something: every one counts against the write limits.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every write to the REST API per address and per identity, and a route's own limit.

    The identity is the bearer token's when it is valid (a bad token is the route's to refuse);
    a route's own limit counts per identity, or per address without one.
    """
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else ""
    own = request.app[ROUTE_LIMITS].get((request.method, path))
    write = request.method in WRITES and path.startswith("/api/")
    if write or own is not None:
        limiter, address = request.app[LIMITER], client_address(request) or "unknown"
        identity = _bearer_identity(request)
        caller_key = identity_key(identity) if identity is not None else address
        uses: list[Use] = []
        if write:
            uses.append(("rest_writes_per_address", (address,)))
            if identity is not None:
                uses.append(("rest_writes", (caller_key,)))
        if own is not None:
            uses.append((own, (caller_key,)))
        await limiter.hit_all(uses)
    return await handler(request)


def _bearer_identity(request: web.Request) -> Identity | None:
    try:
        return caller(request)
    except DomainError:
        return None
