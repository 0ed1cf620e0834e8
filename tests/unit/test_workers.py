"""The worker pool's arithmetic: each worker's node URL, and which polling requests it passes on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp.test_utils import make_mocked_request

from config.issuers import ConfigurationError
from config.settings import Settings
from signaling.workers import (
    SiblingPolling,
    WorkerPool,
    check_cluster_settings,
    media_port_slices,
    worker_node_url,
)


def test_each_worker_announces_its_own_port(settings_factory: Callable[..., Settings]) -> None:
    plain = settings_factory(port=8080, workers=3)
    assert [w.node_url for w in WorkerPool(plain).workers] == [
        "http://127.0.0.1:8081",
        "http://127.0.0.1:8082",
        "http://127.0.0.1:8083",
    ]
    public = settings_factory(public_url="https://consult.example.org/", worker_ports_from=9000)
    assert worker_node_url(public, 9000) == "https://consult.example.org:9000"
    template = settings_factory(node_url="https://media1.example.org:{port}/")
    assert worker_node_url(template, 8443) == "https://media1.example.org:8443"
    ipv6 = settings_factory(host="::1", port=8080)
    assert worker_node_url(ipv6, 8081) == "http://[::1]:8081"


def test_every_worker_trusts_its_siblings_own_ports_as_the_clusters_origins(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        public_url="https://consult.example.org", workers=2, cluster_origins="https://b.example"
    )
    pool = WorkerPool(settings)
    given = {pool._environment(worker)["TELECONSULT_CLUSTER_ORIGINS"] for worker in pool.workers}
    assert given == {
        "https://consult.example.org,https://b.example,"
        f"https://consult.example.org:{settings.port + 1},"
        f"https://consult.example.org:{settings.port + 2}"
    }


def test_each_worker_gets_its_own_slice_of_the_media_ports(
    settings_factory: Callable[..., Settings],
) -> None:
    assert media_port_slices((40000, 40999), 4) == [
        (40000, 40249),
        (40250, 40499),
        (40500, 40749),
        (40750, 40999),
    ]
    assert media_port_slices((40000, 40010), 3) == [(40000, 40003), (40004, 40007), (40008, 40010)]
    pool = WorkerPool(settings_factory(workers=2, media_ports="40000-40999"))
    given = [pool._environment(worker)["TELECONSULT_MEDIA_PORTS"] for worker in pool.workers]
    assert given == ["40000-40499", "40500-40999"]


def test_a_media_range_smaller_than_the_workers_is_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(
        workers=3,
        media_ports="40000-40001",
        redis_url="redis://127.0.0.1:6379/9",
        database_url="postgresql+asyncpg://postgres@127.0.0.1/test",
    )
    with pytest.raises(ConfigurationError, match="2 ports for 3 workers"):
        check_cluster_settings(settings)


def test_a_worker_passes_on_only_its_siblings_polling_requests(
    settings_factory: Callable[..., Settings],
) -> None:
    polling = SiblingPolling(
        settings_factory(port=8080, workers=3, worker_ports_from=9000, worker_port=9001)
    )

    def sibling(query: str, headers: dict[str, str] | None = None) -> int | None:
        return polling.sibling_of(make_mocked_request("GET", query, headers=headers))

    assert sibling("/socket.io/?EIO=4&transport=polling&sid=9000.abc") == 9000
    assert sibling("/socket.io/?EIO=4&transport=polling&sid=9002.abc") == 9002
    # Its own sessions, a new session, ports that are not a sibling's, other paths, upgrades.
    assert sibling("/socket.io/?EIO=4&transport=polling&sid=9001.abc") is None
    assert sibling("/socket.io/?EIO=4&transport=polling") is None
    assert sibling("/socket.io/?EIO=4&transport=polling&sid=5432.abc") is None
    assert sibling("/socket.io/?EIO=4&transport=polling&sid=abc") is None
    assert sibling("/api/consults?sid=9000.abc") is None
    upgrade = {"Upgrade": "websocket"}
    assert sibling("/socket.io/?EIO=4&transport=websocket&sid=9000.abc", upgrade) is None
