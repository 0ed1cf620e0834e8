"""The limiter on the real Redis: several limits and a socket claim counted in one round trip, in
the counters the ``limits`` library reads, with the order and the refusals of one hit at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from limits import parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from signaling.errors import RateLimited
from signaling.limits import (
    LIMITS_KEY_PREFIX,
    Limit,
    Limiter,
    TooManySockets,
    redis_storage_uri,
)

pytestmark = pytest.mark.redis

WHO = "h-east/pt-li"


def limit(name: str, rates: str, shared: bool = True) -> Limit:
    return Limit(name, tuple(parse_many(rates)), shared)


@pytest.fixture
async def limiter(redis_url: str) -> AsyncIterator[Limiter]:
    limits = [
        limit("events", "3/minute"),
        limit("chat", "10/minute;5/second"),
        limit("ice_candidates", "2/minute", shared=False),
    ]
    counting = Limiter({entry.name: entry for entry in limits}, redis_url)
    yield counting
    await counting.close()


async def remaining(redis_url: str, name: str, rates: str, key: str) -> list[int]:
    """What the ``limits`` library itself reads in each rate's window of ``name`` for ``key``."""
    library = MovingWindowRateLimiter(
        RedisStorage(
            redis_storage_uri(redis_url), implementation="redispy", key_prefix=LIMITS_KEY_PREFIX
        )
    )
    return [
        (await library.get_window_stats(rate, name, key)).remaining for rate in parse_many(rates)
    ]


async def test_a_refused_use_counts_against_none_of_the_limits_after_it(
    limiter: Limiter, redis_url: str
) -> None:
    for _ in range(3):
        await limiter.hit_all([("events", (WHO,)), ("chat", (WHO,))])
    with pytest.raises(RateLimited) as refused:
        await limiter.hit_all([("events", (WHO,)), ("chat", (WHO,))])
    assert "events" in str(refused.value)
    assert 1 <= refused.value.retry_after <= 60
    assert await remaining(redis_url, "events", "3/minute", WHO) == [0]
    assert await remaining(redis_url, "chat", "10/minute;5/second", WHO) == [7, 2], (
        "the refused event was counted as a chat message"
    )


async def test_each_rate_of_a_limit_holds_and_the_others_keys_go_on(limiter: Limiter) -> None:
    for _ in range(5):
        await limiter.hit_all([("chat", (WHO,))])
    with pytest.raises(RateLimited) as refused:
        await limiter.hit_all([("chat", (WHO,))])
    assert "5 per 1 second" in str(refused.value)
    await limiter.hit_all([("chat", ("h-west/pt-li",))])


async def test_a_limit_counted_in_the_process_holds_beside_the_shared_ones(
    limiter: Limiter,
) -> None:
    for _ in range(2):
        await limiter.hit_all([("events", (WHO,)), ("ice_candidates", ("sid-1",))])
    with pytest.raises(RateLimited) as refused:
        await limiter.hit_all([("events", (WHO,)), ("ice_candidates", ("sid-1",))])
    assert "ice_candidates" in str(refused.value)


async def test_a_connect_refused_by_its_rate_claims_no_socket(
    limiter: Limiter, redis_url: str
) -> None:
    connects = [("events", (WHO,))]  # any shared limit: 3 per minute
    for n in range(2):
        await limiter.open_socket(WHO, f"sid-{n}", 0, 2, connects)
    with pytest.raises(TooManySockets):
        await limiter.open_socket(WHO, "sid-2", 0, 2, connects)
    with pytest.raises(RateLimited):
        await limiter.open_socket(WHO, "sid-3", 0, 2, connects)
    await limiter.close_socket(WHO, "sid-0")
    # The refused connect took no claim: the freed one is there for the next.
    await limiter.open_socket(WHO, "sid-4", 0, 2)
    with pytest.raises(TooManySockets):
        await limiter.open_socket(WHO, "sid-5", 0, 2)
