"""Socket.IO's fan-out channel: one per Redis database, since pub/sub ignores the database."""

from config.redis import fanout_channel


def test_each_redis_database_has_a_fanout_channel_of_its_own() -> None:
    assert fanout_channel("redis://127.0.0.1:6379") == "teleconsult"
    assert fanout_channel("redis://127.0.0.1:6379/0") == "teleconsult"
    assert fanout_channel("redis://127.0.0.1:6379/9") == "teleconsult:9"
    assert fanout_channel("unix:///run/redis.sock?db=3") == "teleconsult:3"
    assert fanout_channel("unix:///run/redis.sock") == "teleconsult"
