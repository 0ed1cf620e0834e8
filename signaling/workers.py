"""``teleconsult serve --workers N``: N nodes on one machine, started and kept alive by this
process (docs/cluster.md, "Several workers on one machine").

Each worker is a whole node (``teleconsult serve``) listening on two ports: the public port,
which all workers share (``SO_REUSEPORT``: the kernel hands each new connection to one of
them), and its own port, its node URL, where a join's redirect sends the participants of the
consults whose media it hosts. The parent migrates the database and makes the data folder's
secrets once, starts the workers, restarts one that dies (with backoff) and forwards
``SIGTERM``/``SIGINT`` to them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import engineio
import socketio
from aiohttp import web
from aiohttp.typedefs import Handler

from config.issuers import ConfigurationError
from config.settings import Settings

logger = logging.getLogger(__name__)

#: A worker must listen on its own port within this many seconds of its start.
START_SECONDS = 120.0
#: A worker asked to stop is killed if it has not exited after this many seconds: longer than
#: aiohttp's own wait for requests in flight (60 s), so that a worker stopping in order can.
STOP_SECONDS = 90.0
#: Restart backoff: the first wait, its cap, and how long a worker must have run for the next
#: death to start over at the first wait.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0
#: How often the parent looks at its workers.
TEND_SECONDS = 0.2
#: HTTP to the workers, never through a proxy of the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_cluster_settings(settings: Settings) -> None:
    """Refuse settings with which several workers cannot share one deployment."""
    if not settings.redis_url:
        raise ConfigurationError(
            "serve --workers N (N > 1) needs Redis: set TELECONSULT_REDIS_URL "
            "(the workers find each other and share Socket.IO through it)"
        )
    if settings.is_embedded_database:
        raise ConfigurationError(
            "serve --workers N (N > 1) needs a shared database: set TELECONSULT_DATABASE_URL "
            "to PostgreSQL (the embedded SQLite file serves one process)"
        )
    if settings.node_url and "{port}" not in settings.node_url:
        raise ConfigurationError(
            "with serve --workers N, TELECONSULT_NODE_URL must contain {port} (each worker's "
            "own port), e.g. https://media1.example.org:{port}"
        )
    if settings.media_ports:
        media_port_slices(settings.media_ports, settings.workers)


def media_port_slices(ports: tuple[int, int], workers: int) -> list[tuple[int, int]]:
    """
    The media port range cut into one disjoint slice per worker, as even as it goes.

    :param ports: The deployment's UDP range (first, last), both included.
    :param workers: How many workers share it.
    :raises ConfigurationError: When the range has fewer ports than workers.
    """
    first, last = ports
    count = last - first + 1
    if count < workers:
        raise ConfigurationError(
            f"TELECONSULT_MEDIA_PORTS {first}-{last} has {count} ports for {workers} workers: "
            "each worker needs its own, two per participant and media address"
        )
    size, extra = divmod(count, workers)
    slices = []
    for index in range(workers):
        start = first + index * size + min(index, extra)
        slices.append((start, start + size - 1 + (index < extra)))
    return slices


def _port_range(ports: tuple[int, int]) -> str:
    """A range as TELECONSULT_MEDIA_PORTS writes it."""
    return f"{ports[0]}-{ports[1]}"


def first_worker_port(settings: Settings) -> int:
    """The own port of the first worker (the others follow it)."""
    return settings.worker_ports_from or settings.port + 1


def worker_node_url(settings: Settings, port: int) -> str:
    """The node URL of the worker listening on ``port``: ``TELECONSULT_NODE_URL`` with its
    ``{port}`` filled in, or else the public URL with its port replaced."""
    if settings.node_url:
        return settings.node_url.replace("{port}", str(port)).rstrip("/")
    parts = urlsplit(settings.base_url())
    host = parts.hostname or settings.host
    host = f"[{host}]" if ":" in host else host
    return urlunsplit(parts._replace(netloc=f"{host}:{port}")).rstrip("/")


def local_url(settings: Settings, port: int) -> str:
    """The URL this machine reaches a worker's own port at (loopback for a wildcard host)."""
    host = settings.host
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class Worker:
    """One worker process and what the parent knows of it.

    :param index: its number, from 0.
    :param port: its own port.
    :param node_url: the URL its node announces.
    """

    index: int
    port: int
    node_url: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float | None = None


class WorkerPool:
    """Starts N workers, keeps them running, and stops them on ``SIGTERM`` or ``SIGINT``.

    :param settings: the deployment's settings (the workers read the same environment); how
        many workers, and from which port.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._first_port = first_worker_port(settings)
        self.workers = [
            Worker(i, port, worker_node_url(settings, port))
            for i, port in enumerate(range(self._first_port, self._first_port + settings.workers))
        ]
        self._media_ports = (
            media_port_slices(settings.media_ports, settings.workers)
            if settings.media_ports
            else None
        )
        # Each worker's own port is an origin of its own: a page (and the placement, which
        # sends clients only to the cluster's origins) must be allowed to follow a redirect there.
        worker_origins = [f"{u.scheme}://{u.netloc}" for u in map(urlsplit, self._node_urls)]
        self._cluster_origins = ",".join(dict.fromkeys(settings.trusted_origins() + worker_origins))
        self._stop = threading.Event()

    @property
    def _node_urls(self) -> list[str]:
        return [worker.node_url for worker in self.workers]

    def run(self) -> int:
        """Serve until asked to stop; the exit status (1 when a worker failed to start)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for worker in self.workers:
            self._start(worker)
        if not self._all_ready():
            logger.error("a worker failed to start: stopping the others")
            self._stop_all()
            return 1
        logger.info(
            "workers serving",
            extra={"port": self._settings.port, "nodes": self._node_urls},
        )
        while not self._stop.wait(TEND_SECONDS):
            for worker in self.workers:
                self._tend(worker)
        return 0 if self._stop_all() else 1

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        logger.info("stopping the workers", extra={"signal": signal.Signals(signum).name})
        self._stop.set()

    def _environment(self, worker: Worker) -> dict[str, str]:
        settings = self._settings
        slices = self._media_ports
        return {
            **os.environ,
            **({"TELECONSULT_MEDIA_PORTS": _port_range(slices[worker.index])} if slices else {}),
            # The parent's command-line flags win over the environment: pass what it resolved.
            "TELECONSULT_HOST": settings.host,
            "TELECONSULT_PORT": str(settings.port),
            "TELECONSULT_WORKERS": str(settings.workers),
            "TELECONSULT_WORKER_PORTS_FROM": str(self._first_port),
            "TELECONSULT_WORKER_PORT": str(worker.port),
            "TELECONSULT_NODE_URL": worker.node_url,
            "TELECONSULT_CLUSTER_ORIGINS": self._cluster_origins,
        }

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(
            [sys.executable, "-m", "signaling.cli", "serve"],
            env=self._environment(worker),
            # Its own process group: a terminal's Ctrl+C reaches the parent only, which stops
            # the workers in order.
            process_group=0,
        )
        worker.started_at = time.monotonic()
        worker.ready = False
        worker.restart_at = None
        logger.info(
            "worker started",
            extra={"worker": worker.index, "pid": worker.process.pid, "port": worker.port},
        )

    def _all_ready(self) -> bool:
        """Wait until every worker listens on its own port; False if one exits or is late."""
        deadline = time.monotonic() + START_SECONDS
        while not all(worker.ready for worker in self.workers):
            if self._stop.is_set() or time.monotonic() > deadline:
                return False
            for worker in self.workers:
                assert worker.process is not None
                if worker.process.poll() is not None:
                    logger.error(
                        "worker exited at start",
                        extra={"worker": worker.index, "status": worker.process.returncode},
                    )
                    return False
                worker.ready = worker.ready or self._listens(worker.port)
            time.sleep(TEND_SECONDS)
        return True

    def _listens(self, port: int) -> bool:
        """Whether a worker's own port answers ``/healthz`` (not merely accepts: another
        program may hold the port)."""
        try:
            with _DIRECT.open(f"{local_url(self._settings, port)}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def _tend(self, worker: Worker) -> None:
        """Restart a worker that died (after its backoff); note when a started one listens."""
        now = time.monotonic()
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                self._start(worker)
            return
        assert worker.process is not None
        status = worker.process.poll()
        if status is None:
            if not worker.ready and self._listens(worker.port):
                worker.ready = True
                logger.info("worker serving again", extra={"worker": worker.index})
            return
        if now - worker.started_at >= STABLE_AFTER_SECONDS:
            worker.backoff = FIRST_BACKOFF_SECONDS
        worker.restart_at = now + worker.backoff
        logger.warning(
            "worker died: restarting it",
            extra={"worker": worker.index, "status": status, "in_seconds": worker.backoff},
        )
        worker.backoff = min(worker.backoff * 2, MAX_BACKOFF_SECONDS)

    def _stop_all(self) -> bool:
        """Ask every running worker to stop, wait for each; True if all exited cleanly."""
        running = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + STOP_SECONDS
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                logger.error("worker did not stop: killing it", extra={"pid": process.pid})
                process.kill()
                process.wait()
            clean = clean and process.returncode == 0
        return clean


def listening_sockets(settings: Settings) -> list[socket.socket]:
    """A worker's sockets: the shared public port (``SO_REUSEPORT``) and its own port."""
    assert settings.worker_port is not None
    return [
        _bound(settings.host, settings.port, reuse_port=True),
        _bound(settings.host, settings.worker_port, reuse_port=False),
    ]


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class _PinnedEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """An engine.io server whose session ids start with this worker's own port."""

    worker_port = 0

    def generate_id(self) -> str:
        """A unique session id that names the worker holding the session."""
        return f"{self.worker_port}.{super().generate_id()}"


class WorkerSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """The Socket.IO server of a worker: its sessions' ids name its own port, so that a
    sibling receiving one of their long-polling requests on the shared port can pass it on.

    :param worker_port: this worker's own port.
    """

    def __init__(self, worker_port: int, **options: Any) -> None:
        self._worker_port = worker_port
        super().__init__(**options)

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return type(
            "PinnedEngineServer", (_PinnedEngineServer,), {"worker_port": self._worker_port}
        )


def socket_server(settings: Settings, **options: Any) -> socketio.AsyncServer:
    """This process's Socket.IO server: pinned sessions in a worker of ``serve --workers``."""
    if settings.worker_port is None:
        return socketio.AsyncServer(**options)
    return WorkerSocketServer(settings.worker_port, **options)


#: Headers of a long-polling request that its owner reads: engine.io checks the origin against
#: the host (and the proxy's scheme), the session cookie, and who the client is; it compresses
#: an answer of 1 KiB or more with what the client accepts.
_FORWARDED_HEADERS = (
    "Accept-Encoding",
    "Content-Type",
    "Origin",
    "Host",
    "Cookie",
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
)
#: Headers of a forwarded long-polling answer that belong to one hop only. Its body is passed on
#: as the owner encoded it, so its Content-Encoding stays: without it a compressed poll reached
#: the client as garbage, and the packets in it (an ack among them) were lost.
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "date"}


class SiblingPolling:
    """Passes a long-polling request of another worker's Socket.IO session to that worker.

    The kernel spreads the connections of the shared port over the workers, and a browser
    polls over several connections: a request whose session id names a sibling's port is sent
    to that sibling's own port and its answer returned. WebSocket needs none of this (one
    connection, one worker); an upgrade that reaches the wrong worker is refused and the
    client keeps polling.

    :param settings: this worker's settings (its siblings' ports, how long a poll lasts).
    """

    def __init__(self, settings: Settings) -> None:
        first = first_worker_port(settings)
        self._settings = settings
        self._siblings = set(range(first, first + settings.workers)) - {settings.worker_port}
        self._timeout = aiohttp.ClientTimeout(
            total=settings.socket_ping_interval_seconds + settings.socket_ping_timeout_seconds + 10
        )
        self._http: aiohttp.ClientSession | None = None

    def sibling_of(self, request: web.Request) -> int | None:
        """The sibling's port a long-polling request belongs to, if any."""
        if not request.path.startswith("/socket.io/") or "Upgrade" in request.headers:
            return None
        port, dot, _ = request.query.get("sid", "").partition(".")
        if dot and port.isdigit() and int(port) in self._siblings:
            return int(port)
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp middleware: forward a sibling's polling request, serve anything else."""
        port = self.sibling_of(request)
        if port is None:
            return await handler(request)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        headers = {
            name: value
            for name in _FORWARDED_HEADERS
            if (value := request.headers.get(name)) is not None
        }
        async with self._http.request(
            request.method,
            local_url(self._settings, port) + request.path_qs,
            data=await request.read(),
            headers=headers,
            # Only what the client accepts: aiohttp's own default asks for gzip.
            skip_auto_headers=("Accept-Encoding",),
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=answer.status, body=body, headers=kept)

    async def close(self, _: web.Application) -> None:
        """Close the connections to the siblings (``on_cleanup``)."""
        if self._http is not None:
            await self._http.close()
