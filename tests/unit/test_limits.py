"""The limiter on its own: counts per key, refuses the use too many, and reads its settings."""

from __future__ import annotations

import pytest
from limits import parse_many
from pydantic import ValidationError

from config.settings import Settings
from signaling.errors import RateLimited
from signaling.limits import Limit, Limiter, limits_from_settings, redis_storage_uri


def limiter(rates: str, shared: bool = True) -> Limiter:
    """A limiter counting in the process, of one limit named ``chat``."""
    return Limiter({"chat": Limit("chat", tuple(parse_many(rates)), shared)})


async def test_the_use_too_many_is_refused_with_a_retry_after() -> None:
    chat = limiter("3 per 30 seconds")
    for _ in range(3):
        await chat.hit("chat", "h-east/pt-li")
    with pytest.raises(RateLimited) as refused:
        await chat.hit("chat", "h-east/pt-li")
    assert refused.value.code == "rate_limited"
    assert 1 <= refused.value.retry_after <= 30


async def test_each_key_has_its_own_count_and_every_rate_holds() -> None:
    chat = limiter("5/minute;2/second")
    await chat.hit("chat", "h-east/pt-li")
    await chat.hit("chat", "h-east/pt-li")
    with pytest.raises(RateLimited):
        await chat.hit("chat", "h-east/pt-li")
    await chat.hit("chat", "h-west/pt-li")


def test_every_limit_of_the_settings_is_read_and_a_bad_one_is_refused() -> None:
    limits = limits_from_settings(Settings())
    assert [str(rate) for rate in limits["chat"].rates] == ["20 per 4 second"]
    assert limits["chat"].shared and not limits["ice_candidates"].shared
    with pytest.raises(ValidationError, match="rate_limit_chat"):
        Settings(rate_limit_chat="plenty")


def test_redis_urls_become_limits_storage_uris() -> None:
    assert redis_storage_uri("redis://db:6379/2") == "async+redis://db:6379/2"
    assert redis_storage_uri("rediss://:pw@db:6380/0") == "async+rediss://:pw@db:6380/0"
    assert (
        redis_storage_uri("unix:///run/redis.sock?db=1")
        == "async+redis+unix:///run/redis.sock?db=1"
    )
