"""``teleconsult serve --workers 2`` as an administrator runs it: two nodes on one machine that
share the public port, a visit through that port, a worker killed and restarted, and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio
from aiohttp import ClientSession

from config.settings import Settings
from signaling.auth import issuer_from_settings
from signaling.cli import main
from tests.conftest import free_tcp_port
from tests.integration.cluster_client import ClusterParticipant, serve_environment
from tests.integration.live import NO_RATE_LIMITS, LiveServer
from tests.integration.test_cluster import CLUSTER_TIMING, admit_visit, sees_each_other
from tests.integration.test_media_ports import free_udp_range, server_ports
from tests.log_scan import register_log_file

pytestmark = pytest.mark.redis

#: Generous: the machine is shared, and a worker imports aiortc, PyAV and SQLAlchemy at start.
START_SECONDS = 120
STOP_SECONDS = 150


def two_free_ports() -> int:
    """The first of two consecutive TCP ports of 127.0.0.1 that nothing listens on now."""
    while True:
        port = free_tcp_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@pytest.fixture
def pool_settings(
    postgres_url: str, redis_url: str, settings_factory: Callable[..., Settings]
) -> Settings:
    """A deployment of two workers on loopback: shared PostgreSQL and Redis, a shared port."""
    return settings_factory(
        database_url=postgres_url,
        redis_url=redis_url,
        port=free_tcp_port(),
        worker_ports_from=two_free_ports(),
        media_ports=free_udp_range(8),  # four ports for each worker
        **NO_RATE_LIMITS,
        **CLUSTER_TIMING,
    )


def worker_urls(settings: Settings) -> list[str]:
    """The node URLs of the two workers."""
    assert settings.worker_ports_from is not None
    return [f"http://127.0.0.1:{settings.worker_ports_from + i}" for i in range(2)]


def children(pid: int) -> list[int]:
    """The process ids of a process's children."""
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def node_at(http: ClientSession, url: str) -> dict[str, Any] | None:
    """The node a URL's /readyz shows when it answers 200, else None."""
    try:
        async with http.get(f"{url}/readyz") as response:
            return (await response.json())["node"] if response.status == 200 else None
    except OSError:
        return None


async def wait_for_nodes(http: ClientSession, urls: list[str]) -> list[dict[str, Any]]:
    """Wait until each URL's node is ready; the nodes."""
    async with asyncio.timeout(START_SECONDS):
        while True:
            nodes = [await node_at(http, url) for url in urls]
            if all(nodes):
                return [node for node in nodes if node]
            await asyncio.sleep(0.3)


@asynccontextmanager
async def serve_workers(settings: Settings, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``teleconsult serve --workers 2`` with ``settings``; killed at the end if still running."""
    register_log_file(log)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "teleconsult"),
        "serve",
        "--workers",
        "2",
        env=serve_environment(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            pids = children(process.pid)
            process.kill()
            await process.wait()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(600)
async def test_two_workers_share_the_port_serve_a_visit_survive_a_kill_and_stop_on_sigterm(
    pool_settings: Settings, tmp_path: Path
) -> None:
    shared = pool_settings.base_url()
    urls = worker_urls(pool_settings)
    issuer = issuer_from_settings(pool_settings)
    assert issuer is not None
    redis_client = aioredis.from_url(pool_settings.redis_url or "")
    async with (
        serve_workers(pool_settings, tmp_path / "workers.log") as parent,
        ClientSession() as http,
    ):
        # Each worker is a node of its own, registered at its own port's URL.
        nodes = await wait_for_nodes(http, urls)
        assert [node["url"] for node in nodes] == urls
        assert nodes[0]["node_id"] != nodes[1]["node_id"]
        assert await redis_client.exists(*(f"teleconsult:node:{n['node_id']}" for n in nodes)) == 2

        # A visit joined through the shared port: both end up on the consult's media node.
        live = LiveServer(shared, pool_settings, issuer, http)
        consult = await live.schedule_visit()
        doctor = ClusterParticipant([shared], live.token_of(consult, "dr-wang"), consult["id"])
        patient = ClusterParticipant([shared], live.token_of(consult, "pt-li"), consult["id"])
        try:
            await admit_visit(live, consult, doctor, patient, shared, shared)
            await sees_each_other(consult, doctor, patient, timeout=60)
            # One worker hosts the visit and both publishers (whoever reached the other worker
            # was sent to this one's own port; who reached it stays on the shared port).
            holds = [await node_at(http, url) or {} for url in urls]
            assert sorted((n["consults"], n["publishers"]) for n in holds) == [(0, 0), (1, 2)]
            # Their media node's candidates are in its slice of the deployment's UDP range.
            first, last = pool_settings.media_ports or (0, 0)
            slices = [(first, first + 3), (first + 4, last)]
            ports = {
                port
                for person in (doctor, patient)
                if person.media is not None
                for port in server_ports(person.media.publisher)
            }
            assert len(ports) == 2
            assert any(all(low <= p <= high for p in ports) for low, high in slices), ports
        finally:
            await doctor.close()
            await patient.close()

        # A worker killed outright is started again and registers as a new node.
        first_pids = children(parent.pid)
        assert len(first_pids) == 2
        killed = nodes[0]
        first_worker = started_pid(tmp_path / "workers.log", 0)
        assert first_worker in first_pids
        os.kill(first_worker, signal.SIGKILL)
        async with asyncio.timeout(START_SECONDS):
            while True:
                again = await node_at(http, urls[0])
                if again is not None and again["node_id"] != killed["node_id"]:
                    break
                await asyncio.sleep(0.3)
        assert await redis_client.exists(f"teleconsult:node:{again['node_id']}") == 1
        assert parent.returncode is None
        restarted = [pid for pid in children(parent.pid) if pid not in first_pids]
        assert len(restarted) == 1

        # SIGTERM to the parent stops every worker in order: each leaves the directory.
        running = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_SECONDS):
            assert await parent.wait() == 0
        for pid in running:
            with pytest.raises(ProcessLookupError):  # exited, and reaped by the parent
                os.kill(pid, 0)
        live_ids = [again["node_id"], nodes[1]["node_id"]]
        assert await redis_client.exists(*(f"teleconsult:node:{i}" for i in live_ids)) == 0
    await redis_client.aclose()


#: Polling joins through the shared port: with two workers about half are passed on to the other.
POLLING_JOINS = 12


@pytest.mark.timeout(600)
async def test_every_polling_join_through_the_shared_port_gets_its_ack(
    pool_settings: Settings, tmp_path: Path
) -> None:
    shared = pool_settings.base_url()
    issuer = issuer_from_settings(pool_settings)
    assert issuer is not None
    async with (
        serve_workers(pool_settings, tmp_path / "workers.log"),
        ClientSession() as http,
    ):
        await wait_for_nodes(http, worker_urls(pool_settings))
        live = LiveServer(shared, pool_settings, issuer, http)
        consult = await live.schedule_visit()
        for attempt in range(POLLING_JOINS):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                shared,
                auth={"token": live.token_of(consult, "dr-wang")},
                transports=["polling"],
                wait_timeout=10,
            )
            try:
                # A join's answer (the consult, its participants, ICE servers) and the events
                # that come with it fill a poll past engine.io's compression threshold.
                # A join that reached the worker without the consult's media is sent there.
                ack = await client.call("join", {"consult_id": consult["id"]}, timeout=15)
                if not ack["ok"]:
                    assert ack["error"]["code"] == "media_on_other_node", (attempt, ack)
                    continue
                chat = {"text": "x" * 1500}
                assert (await client.call("chat", chat, timeout=15))["ok"], attempt
            finally:
                await client.disconnect()


def started_pid(log: Path, worker: int) -> int:
    """The process id of a worker's latest start, from the parent's log."""
    starts = [
        entry["pid"]
        for line in log.read_text().splitlines()
        if line.startswith("{")
        and (entry := json.loads(line)).get("msg") == "worker started"
        and entry["worker"] == worker
    ]
    return int(starts[-1])


async def test_a_worker_that_cannot_start_stops_the_pool_with_a_failure(
    pool_settings: Settings, tmp_path: Path
) -> None:
    assert pool_settings.worker_ports_from is not None
    with socket.socket() as taken:
        # Something else holds the second worker's own port.
        taken.bind(("127.0.0.1", pool_settings.worker_ports_from + 1))
        taken.listen()
        async with serve_workers(pool_settings, tmp_path / "workers.log") as parent:
            async with asyncio.timeout(START_SECONDS + STOP_SECONDS):
                assert await parent.wait() == 1


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({}, "needs Redis"),
        ({"TELECONSULT_REDIS_URL": "redis://127.0.0.1:6379/9"}, "needs a shared database"),
        (
            {
                "TELECONSULT_REDIS_URL": "redis://127.0.0.1:6379/9",
                "TELECONSULT_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/test",
                "TELECONSULT_NODE_URL": "https://media1.example.org",
            },
            "must contain {port}",
        ),
    ],
)
def test_several_workers_refuse_a_deployment_they_cannot_share(
    environment: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings_factory: Callable[..., Settings],
) -> None:
    settings_factory()  # clears the shell's TELECONSULT_* variables
    monkeypatch.setenv("TELECONSULT_DATA_DIR", str(tmp_path))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--workers", "2"]) == 2
    assert message in capsys.readouterr().err
