"""Fixtures every test may use: settings, a fresh database (SQLite and PostgreSQL), Redis.

Tests run in two places (scripts/test.sh): on the host network, where PostgreSQL and Redis answer
on 127.0.0.1, and inside a network namespace that has only ``lo`` (the ``webrtc`` tests), where
PostgreSQL answers only on its Unix socket and Redis must be started privately.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings

#: Every log line of the run is checked for the secrets tests used (tests/log_scan.py).
pytest_plugins = ("tests.log_scan",)

TESTS_DIR = Path(__file__).resolve().parent
PG_SOCKET_DIR = "/var/run/postgresql"
HOST_REDIS = ("127.0.0.1", 6379)
# Redis databases the `redis_url` fixture may claim on the shared host Redis (0-7 are left alone).
REDIS_TEST_DBS = range(8, 16)
REDIS_LOCK_KEY = "teleconsult-test:db-lock:{}"

# Default per-test limits (pytest-timeout) by folder; a test's own @pytest.mark.timeout wins.
DEFAULT_TIMEOUTS = {"unit": 60, "webrtc": 120}
DEFAULT_TIMEOUT = 180


def in_test_netns() -> bool:
    """True inside the loopback-only network namespace of the webrtc phase."""
    if os.environ.get("TELECONSULT_TEST_NETNS") == "1":
        return True
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env_names() -> set[str]:
    """The environment variables Settings reads (TELECONSULT_<FIELD>)."""
    return {f"TELECONSULT_{name.upper()}" for name in Settings.model_fields}


def clean_environ() -> dict[str, str]:
    """os.environ without the variables Settings reads: a developer's shell must not leak in."""
    names = settings_env_names()
    return {key: value for key, value in os.environ.items() if key.upper() not in names}


# --- collection ------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/webrtc/ is a webrtc test; give each test a default time limit."""
    timeout_from_cli = config.getoption("timeout", default=None) is not None
    for item in items:
        try:
            parts = Path(item.path).resolve().relative_to(TESTS_DIR).parts
        except ValueError:
            parts = ()
        folder = parts[0] if len(parts) > 1 else ""
        if folder == "webrtc" and item.get_closest_marker("webrtc") is None:
            item.add_marker(pytest.mark.webrtc)
        if not timeout_from_cli and item.get_closest_marker("timeout") is None:
            limit = DEFAULT_TIMEOUTS.get(folder, DEFAULT_TIMEOUT)
            if item.get_closest_marker("webrtc") is not None:
                limit = max(limit, DEFAULT_TIMEOUTS["webrtc"])
            item.add_marker(pytest.mark.timeout(limit))


#: Seconds a test's teardown may take before every asyncio task's stack is written to stderr:
#: pytest-timeout's own dump shows threads only, and a hung teardown's thread waits in select.
SLOW_TEARDOWN_SECONDS = 60.0


def _dump_asyncio_tasks() -> None:
    """Write each running event loop's tasks, with their stacks, to stderr (from its own loop)."""
    for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
        if loop.is_running() and not loop.is_closed():

            def dump(loop: asyncio.AbstractEventLoop = loop) -> None:
                print(f"--- slow teardown: the tasks of {loop!r}", file=sys.stderr)
                for task in asyncio.all_tasks(loop):
                    print(f"--- {task!r}", file=sys.stderr)
                    awaited: Any = task.get_coro()
                    while awaited is not None:  # the whole await chain, not its first frame
                        frame = getattr(awaited, "cr_frame", None) or getattr(
                            awaited, "ag_frame", None
                        )
                        if frame is not None:
                            where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
                            print(f"    {where}", file=sys.stderr)
                        awaited = getattr(awaited, "cr_await", None) or getattr(
                            awaited, "ag_await", None
                        )
                sys.stderr.flush()

            loop.call_soon_threadsafe(dump)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """A teardown that runs longer than SLOW_TEARDOWN_SECONDS gets its asyncio tasks dumped."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(SLOW_TEARDOWN_SECONDS):
            _dump_asyncio_tasks()

    threading.Thread(target=watch, name="slow-teardown-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()


# --- settings --------------------------------------------------------------------------------


@pytest.fixture
def jwt_secret() -> str:
    """A fresh HS256 secret for one test."""
    return secrets.token_urlsafe(32)


@pytest.fixture
def settings_factory(
    tmp_path: Path, jwt_secret: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Settings]:
    """Builds Settings for a test: data in tmp_path, media on 127.0.0.1, no ICE servers.

    Keyword arguments override any field; TELECONSULT_* variables of the shell are ignored.
    """
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "media_addresses": ["127.0.0.1"],
            "ice_servers": [],
            "jwt_secret": jwt_secret,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings with the test defaults of settings_factory (embedded SQLite in tmp_path)."""
    return settings_factory()


# --- databases -------------------------------------------------------------------------------


def _pg_host() -> str:
    explicit = os.environ.get("TELECONSULT_TEST_PG_HOST")
    if explicit:
        return explicit
    return PG_SOCKET_DIR if in_test_netns() else "127.0.0.1"


def _pg_user() -> str:
    return os.environ.get("TELECONSULT_TEST_PG_USER", "postgres")


def _psql(sql: str) -> str:
    """Run one statement on the `test` database as the superuser; stdout, stripped."""
    if shutil.which("psql") is None:
        pytest.fail("psql is not installed: the PostgreSQL tests need the postgresql client")
    command = ["psql", "-h", _pg_host(), "-p", "5432", "-U", _pg_user(), "-d", "test"]
    command += ["-X", "-v", "ON_ERROR_STOP=1", "-Atqc", sql]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"PostgreSQL at {_pg_host()} (user {_pg_user()}, database test) refused {sql!r}: "
            f"{result.stderr.strip()}. Is it running? scripts/ensure-services.sh starts it."
        )
    return result.stdout.strip()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file: ``sqlite+aiosqlite:////tmp/.../db/test.db``."""
    folder = tmp_path / "db"
    folder.mkdir(exist_ok=True)
    return f"sqlite+aiosqlite:///{folder / 'test.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards.

    ``postgresql+asyncpg://postgres@127.0.0.1:5432/tc_<hex>`` on the host network, or
    ``postgresql+asyncpg://postgres@/tc_<hex>?host=/var/run/postgresql`` inside the namespace.
    """
    name = f"tc_{secrets.token_hex(6)}"
    _psql(f'CREATE DATABASE "{name}"')
    host = _pg_host()
    if host.startswith("/"):
        url = f"postgresql+asyncpg://{_pg_user()}@/{name}?host={host}"
    else:
        url = f"postgresql+asyncpg://{_pg_user()}@{host}:5432/{name}"
    try:
        yield url
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database; the test runs once on SQLite and once on PostgreSQL."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param]
    return request.getfixturevalue(fixture)


# --- Redis -----------------------------------------------------------------------------------


def _wait_for_redis(client: redis.Redis, seconds: float, process: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.ping():
                return
        except redis.ConnectionError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis did not answer within {seconds}s")
        time.sleep(0.02)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test only (no persistence) on a free port: ``redis://127.0.0.1:P/0``.

    Works inside the namespace too, where the host's Redis is out of reach.
    """
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: needed to start a private Redis")
    port = free_tcp_port()
    folder = tmp_path / f"redis-{port}"
    folder.mkdir()
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder), "--daemonize", "no"]
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        _wait_for_redis(client, 10, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty Redis database of this test only: ``redis://127.0.0.1:6379/<8..15>``.

    On the host it claims one of databases 8-15 of the machine's Redis (a lock key in db 0 keeps
    concurrent runs apart) and flushes it before and after. Inside the namespace it is a
    private_redis. Pub/sub channels are shared by all databases of one server: give Socket.IO
    managers a channel of their own when runs may overlap.
    """
    if in_test_netns():
        yield request.getfixturevalue("private_redis")
        return
    host, port = HOST_REDIS
    admin = redis.Redis(host=host, port=port, db=0, socket_timeout=5)
    try:
        admin.ping()
    except redis.ConnectionError as exc:
        admin.close()
        pytest.fail(f"Redis at {host}:{port} does not answer ({exc}); scripts/ensure-services.sh")
    token = secrets.token_hex(8)
    deadline = time.monotonic() + 60
    db = None
    while db is None:
        for index in REDIS_TEST_DBS:
            if admin.set(REDIS_LOCK_KEY.format(index), token, nx=True, ex=900):
                db = index
                break
        else:
            if time.monotonic() > deadline:
                admin.close()
                pytest.fail("no free Redis test database (8-15) within 60 s")
            time.sleep(0.1)
    client = redis.Redis(host=host, port=port, db=db, socket_timeout=5)
    try:
        client.flushdb()
        yield f"redis://{host}:{port}/{db}"
    finally:
        client.flushdb()
        client.close()
        if admin.get(REDIS_LOCK_KEY.format(db)) == token.encode():
            admin.delete(REDIS_LOCK_KEY.format(db))
        admin.close()


# --- outages ---------------------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of this test only (tests/outages.py), that it may stop and start.

    Its folder is outside pytest's (which only root may enter): the cluster's user must reach it.
    """
    from tests.outages import PrivatePostgres

    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="teleconsult-pg-")))
    server.create()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def stoppable_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of this test only (tests/outages.py), that it may freeze and thaw."""
    from tests.outages import PrivateRedis

    server = PrivateRedis(tmp_path / "stoppable-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
