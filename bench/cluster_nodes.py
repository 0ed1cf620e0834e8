"""
A cluster for the benchmarks: ``teleconsult serve`` nodes as subprocesses on loopback, sharing a
fresh PostgreSQL database and a private Redis, and what the benchmarks read from them.

The database (``tc_bench_<hex>`` on 127.0.0.1:5432, made and dropped with ``psql`` as the tests
do) and the ``redis-server`` (on a free port, no persistence) belong to one run only, so other
engineers' tests sharing the machine's PostgreSQL and Redis never see these nodes, and Redis's
``INFO commandstats`` counts the cluster's commands alone.
"""

# Set-up and tear-down, outside every measured window, may block:
# ruff: noqa: ASYNC220, ASYNC221, ASYNC240, ASYNC251

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sfu import cpu_seconds
from rooms.identity import Identity, Role
from signaling.auth import TokenIssuer
from tests.integration.live import SignalingClient, connect

HOSPITAL = "h-bench"
ISSUER = AUDIENCE = "teleconsult"
PG_USER = os.environ.get("TELECONSULT_TEST_PG_USER", "postgres")
START_GUARD = 60.0
#: Lifts every rate limit: the benchmarks make many calls from one address on purpose.
NO_RATE_LIMITS = {
    "TELECONSULT_RATE_LIMIT_" + name: "1000000/minute"
    for name in (
        "REST_WRITES",
        "REST_WRITES_PER_ADDRESS",
        "SCHEDULING",
        "CONNECTS",
        "CONNECTS_PER_ADDRESS",
        "EVENTS",
        "CHAT",
        "ICE_CANDIDATES",
    )
}


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _psql(sql: str) -> None:
    command = ["psql", "-h", "127.0.0.1", "-U", PG_USER, "-d", "test", "-X", "-v"]
    command += ["ON_ERROR_STOP=1", "-Atqc", sql]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


class Node:
    """One ``teleconsult serve`` process of the cluster.

    :param env: Its environment (the shared database, Redis and secret among it).
    :param folder: Its data folder (its log goes there).
    :param port: Its port (its URL's origin is one of the cluster's).
    """

    def __init__(self, env: dict[str, str], folder: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        folder.mkdir(parents=True)
        env = {
            **env,
            "TELECONSULT_DATA_DIR": str(folder),
            "TELECONSULT_NODE_URL": self.url,
        }
        self.process = subprocess.Popen(
            [_teleconsult(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "server.log").open("wb"),
        )

    async def ready(self, http: aiohttp.ClientSession) -> None:
        """Wait until ``/readyz`` answers 200."""
        deadline = time.monotonic() + START_GUARD
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.url} exited with {self.process.returncode}")
            try:
                async with http.get(f"{self.url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"node {self.url} did not become ready")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process used so far."""
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL after 20 s)."""
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _teleconsult() -> str:
    return str(Path(sys.executable).with_name("teleconsult"))


class Cluster:
    """Nodes sharing one database and one Redis; tokens of its issuer; its Redis counters.

    :param nodes: The running nodes.
    :param issuer: Signs identity tokens all nodes accept.
    :param redis_client: The private Redis.
    """

    def __init__(self, nodes: list[Node], issuer: TokenIssuer, redis_client: redis.Redis) -> None:
        self.nodes = nodes
        self.issuer = issuer
        self.redis = redis_client

    @property
    def urls(self) -> list[str]:
        """Every node's signaling URL."""
        return [node.url for node in self.nodes]

    def token(self, sub: str, role: Role) -> str:
        """An identity token of a person of the bench's hospital."""
        return self.issuer.mint(Identity(sub, sub, role, HOSPITAL), 3600)

    def cpu_seconds(self) -> float:
        """CPU time of all node processes together."""
        return sum(node.cpu_seconds() for node in self.nodes)

    def redis_commands(self) -> int:
        """Commands the private Redis has executed since it started."""
        return sum(self.redis_calls().values())

    def redis_calls(self) -> dict[str, int]:
        """Calls of each command the private Redis has executed since it started."""
        stats = self.redis.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}

    async def metric_total(self, http: aiohttp.ClientSession, name: str) -> float:
        """The sum over all nodes of a metric's samples (all its labels) in ``/metrics``."""
        total = 0.0
        for url in self.urls:
            async with http.get(f"{url}/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith((f"{name} ", f"{name}{{")):
                        total += float(line.rsplit(" ", 1)[1])
        return total

    async def schedule_visits(
        self, http: aiohttp.ClientSession, count: int, prefix: str
    ) -> list[dict[str, Any]]:
        """``count`` visits, each of its own doctor (``<prefix>-dr-<n>``) and patient; their
        consults as the REST API returns them (join links included)."""
        headers = {"Authorization": f"Bearer {self.token('coordinator', Role.COORDINATOR)}"}
        limit = asyncio.Semaphore(8)

        async def one(n: int) -> dict[str, Any]:
            body = {
                "kind": "visit",
                "hospital": HOSPITAL,
                "title": "bench",
                "scheduled_at": datetime.now(UTC).isoformat(),
                "host": {"sub": f"{prefix}-dr-{n}", "name": "Doctor", "role": "doctor"},
                "participants": [{"sub": f"{prefix}-pt-{n}", "name": "Patient", "role": "patient"}],
            }
            url = self.urls[n % len(self.urls)]
            async with (
                limit,
                http.post(f"{url}/api/consults", json=body, headers=headers) as response,
            ):
                if response.status != 201:
                    raise RuntimeError(f"scheduling refused: {await response.text()}")
                return dict(await response.json())

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def patient_token(consult: dict[str, Any]) -> str:
    """The token of the patient's join link."""
    patient = next(p for p in consult["participants"] if p["role"] == "patient")
    return str(patient["join_url"].split("token=", 1)[1])


async def arrive(
    urls: list[str], first: int, token: str, consult_id: str, timeout: float = 120
) -> tuple[SignalingClient, dict[str, Any]]:
    """Connect through ``urls[first]`` and join, following the redirect to the media node;
    the connection and the join's acknowledgement."""
    url = urls[first % len(urls)]
    for _ in range(3):
        signaling = await connect(url, token)
        ack = await signaling.call("join", {"consult_id": consult_id}, timeout=timeout)
        if ack.get("ok"):
            return signaling, ack
        await signaling.close()
        if ack["error"]["code"] != "media_on_other_node":
            raise RuntimeError(f"join refused: {ack['error']['code']}")
        url = ack["error"]["details"]["node_url"]
    raise RuntimeError("no node took the join")


@asynccontextmanager
async def running_cluster(
    nodes: int, folder: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """``nodes`` nodes on a fresh database and a private Redis, stopped and dropped after."""
    folder.mkdir(parents=True, exist_ok=True)
    database = f"tc_bench_{secrets.token_hex(4)}"
    _psql(f'CREATE DATABASE "{database}"')
    redis_port = free_port()
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed")
    command = [server, "--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    redis_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secret = secrets.token_urlsafe(32)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELECONSULT_")}
    env.update(
        TELECONSULT_DATABASE_URL=f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{database}",
        TELECONSULT_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        TELECONSULT_JWT_SECRET=secret,
        TELECONSULT_SECRETS_KEY=Fernet.generate_key().decode(),
        TELECONSULT_MEDIA_ADDRESSES="127.0.0.1",
        TELECONSULT_LOG_LEVEL="WARNING",
        **NO_RATE_LIMITS,
        **(extra_env or {}),
    )
    client = redis.Redis(host="127.0.0.1", port=redis_port, decode_responses=True)
    started: list[Node] = []
    try:
        deadline = time.monotonic() + START_GUARD
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if redis_process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        migrate_env = {**env, "TELECONSULT_DATA_DIR": str(folder / "migrate")}
        subprocess.run([_teleconsult(), "migrate"], env=migrate_env, check=True, timeout=120)
        # Each node's own origin is one of the cluster's: the nodes send joins only there.
        ports = [free_port() for _ in range(nodes)]
        env["TELECONSULT_CLUSTER_ORIGINS"] = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        started = [Node(env, folder / f"node{n}", port) for n, port in enumerate(ports)]
        async with aiohttp.ClientSession() as http:
            for node in started:
                await node.ready(http)
        yield Cluster(started, TokenIssuer("HS256", secret, ISSUER, AUDIENCE), client)
    except BaseException:
        for node in started:
            log = (node.folder / "server.log").read_text(errors="replace")
            print(f"--- {node.url}'s log, its end:\n{log[-3000:]}", file=sys.stderr)
        raise
    finally:
        for node in started:
            node.stop()
            errors = [
                line
                for line in (node.folder / "server.log").read_text(errors="replace").splitlines()
                if '"level": "error"' in line  # config/logging.py's JSON lines
            ]
            if errors:  # a failure the benchmark met is worth reading: the folder goes away
                print(f"--- {node.url}: {len(errors)} errors, the last:\n{errors[-1][-4000:]}")
        client.close()
        redis_process.terminate()
        redis_process.wait(10)
        _psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class CommandProcess:
    """
    A bench script's helper process (its clients), driven one JSON line at a time: a command
    on its stdin, a reply on its stdout.

    :param process: The helper process.
    :param role: What it is, for errors (``visits``, ``clients``).
    :param reply_guard: Seconds a reply may take before the bench gives up.
    :param close_seconds: Seconds it has to end once asked to close.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        role: str,
        reply_guard: float,
        close_seconds: float,
    ) -> None:
        self.process = process
        self.role = role
        self._reply_guard = reply_guard
        self._close_seconds = close_seconds

    @staticmethod
    async def spawn(script: str, role: str, *args: str) -> asyncio.subprocess.Process:
        """Start ``script`` in ``role`` with its stdin and stdout as the command channel."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            role,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send a command, return its reply."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(command).encode() + b"\n")
        await stdin.drain()
        line = await asyncio.wait_for(stdout.readline(), self._reply_guard)
        if not line:
            raise RuntimeError(f"a {self.role} process exited")
        return dict(json.loads(line))

    async def close(self) -> None:
        """Ask it to close and wait for it to end (killing it when it does not)."""
        try:
            await self.call({"do": "close"})
            await asyncio.wait_for(self.process.wait(), self._close_seconds)
        except (RuntimeError, TimeoutError, OSError):
            self.process.kill()
            await self.process.wait()
