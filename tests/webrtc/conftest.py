"""Fixtures of the WebRTC tests: a loopback-only network, headless Chromium, the real server.

These tests run inside a network namespace whose only interface is ``lo`` (scripts/test.sh does
it with scripts/in-netns.sh); see /work/shared/WEBRTC_TESTING.md, trap 3.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import clean_environ, free_tcp_port
from tests.log_scan import register_log_file, register_secret
from tests.webrtc.own_network import OwnNetwork, own_network

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",
]
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_GRACE = 5.0
ARTIFACTS_DIR = "test-artifacts"


# --- reports, artifacts ----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (``item.rep_setup``, ``rep_call``) for teardowns."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def has_failed(node: pytest.Item) -> bool:
    """True when the test's setup or call failed (as seen from a fixture's teardown)."""
    return any(
        getattr(getattr(node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


def artifacts_dir(node: pytest.Item) -> Path:
    """``test-artifacts/<test name>/`` under the repository, created on demand."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", node.nodeid).strip("_")[:150]
    folder = node.config.rootpath / ARTIFACTS_DIR / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- the network -----------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def loopback_only_network() -> None:
    """Refuse to run unless the only network interface is ``lo``, and it is up."""
    # socket.if_nameindex asks the kernel for *this* namespace; /sys/class/net may still show
    # the host's interfaces, since sysfs is not remounted by `unshare -n`.
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        pytest.fail(
            f"WebRTC tests must run in a network namespace with only `lo`, found {names}. "
            "Run them with `make test-webrtc` or `scripts/in-netns.sh .venv/bin/pytest -m webrtc`.",
            pytrace=False,
        )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
    except OSError as exc:
        pytest.fail(f"`lo` is not up in this namespace ({exc}): `ip link set lo up`", pytrace=False)


# --- Chromium --------------------------------------------------------------------------------


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Headless Debian Chromium with a fake camera and microphone, driven by Playwright.

    When the test fails, every open page is saved as a screenshot (plus its console log) in
    ``test-artifacts/<test name>/``.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/ensure-chromium.sh installs it", pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            if has_failed(request.node):
                await _save_pages(chromium, artifacts_dir(request.node))
            await chromium.close()


async def _save_pages(chromium: Browser, folder: Path) -> None:
    for c, context in enumerate(chromium.contexts):
        for p, page in enumerate(context.pages):
            stem = folder / f"context{c}-page{p}"
            try:
                await page.screenshot(path=f"{stem}.png", full_page=True, timeout=5000)
            except Exception as exc:  # the page may have crashed: keep the other artifacts
                stem.with_suffix(".screenshot-error.txt").write_text(repr(exc))
            lines = getattr(page, "_teleconsult_console", [])
            stem.with_suffix(".console.txt").write_text(f"url: {page.url}\n" + "\n".join(lines))


def _record_console(page: Page) -> None:
    lines: list[str] = []
    page._teleconsult_console = lines  # type: ignore[attr-defined]
    page.on("console", lambda message: lines.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: lines.append(f"pageerror: {error}"))


@pytest.fixture
def new_context(browser: Browser) -> Callable[..., Awaitable[BrowserContext]]:
    """Factory of browser contexts (one per simulated user): en-US, camera and microphone allowed.

    ``await new_context(locale="zh-CN")``: keyword arguments go to ``Browser.new_context``.
    Console messages of its pages are kept for the failure artifacts.
    """

    async def create(**options: Any) -> BrowserContext:
        values: dict[str, Any] = {"locale": "en-US", "permissions": ["camera", "microphone"]}
        values.update(options)
        context = await browser.new_context(**values)
        context.on("page", _record_console)
        return context

    return create


@pytest.fixture
async def page(new_context: Callable[..., Awaitable[BrowserContext]]) -> Page:
    """A page in a fresh en-US context with camera and microphone allowed."""
    context = await new_context()
    return await context.new_page()


@pytest.fixture
async def own_network_browser(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Browser, OwnNetwork]]]]:
    """Launch Chromium in a network namespace of its own, trusting the server's bridge origin.

    ``launch(origin, *args)``: each call gives a browser a namespace of its own (10.77.0.2,
    .3, ...); further Chromium arguments in ``args``. The namespaces, their links and shaping go
    at teardown, also when the test fails. A browser in the test's own namespace sees each new
    link appear and drops its connections (it would reconnect, which is not the test's): the
    first namespace is made here, before any other browser starts (request this fixture before
    ``new_context``), and a test that launches more launches them before any other browser.
    """
    with ExitStack() as networks:
        ready = [networks.enter_context(own_network(tmp_path, 2))]
        async with async_playwright() as playwright:
            browsers: list[Browser] = []
            host_numbers = itertools.count(3)

            async def launch(origin: str, *args: str) -> tuple[Browser, OwnNetwork]:
                network = (
                    ready.pop()
                    if ready
                    else networks.enter_context(own_network(tmp_path, next(host_numbers)))
                )
                browser = await playwright.chromium.launch(
                    executable_path=str(network.executable),
                    headless=True,
                    args=[
                        *CHROMIUM_ARGS,
                        f"--unsafely-treat-insecure-origin-as-secure={origin}",
                        *args,
                    ],
                )
                browsers.append(browser)
                return browser, network

            try:
                yield launch
            finally:
                for browser in browsers:
                    await browser.close()


# --- the teleconsult server ------------------------------------------------------------------


def _teleconsult_executable() -> str:
    beside_python = Path(sys.executable).parent / "teleconsult"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("teleconsult")
    if found is None:
        pytest.fail("the `teleconsult` command is not installed: make install", pytrace=False)
    return found


class TeleconsultServer:
    """A real ``teleconsult serve`` process on 127.0.0.1, as a browser sees it.

    :param data_dir: Its TELECONSULT_DATA_DIR.
    :param env: The whole environment it runs with (TELECONSULT_* included).
    :param port: The TCP port it listens on.
    :param listen: The address it listens on (``0.0.0.0``: also a browser in a namespace of its
        own reaches it); its pages are opened at 127.0.0.1 either way.
    """

    def __init__(
        self, data_dir: Path, env: dict[str, str], port: int, listen: str = "127.0.0.1"
    ) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = port
        self.listen = listen
        self.host = "127.0.0.1"
        self.base_url = f"http://{self.host}:{port}"
        self.log_path = data_dir.parent / f"server-{port}.log"
        register_log_file(self.log_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __repr__(self) -> str:
        return f"<TeleconsultServer {self.base_url} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, healthy_within: float = SERVER_START_TIMEOUT) -> None:
        """Start the process and wait until ``GET /healthz`` answers 200."""
        self._spawn()
        await self._wait_healthy(healthy_within)

    def _spawn(self) -> None:
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.starts += 1
        command = [_teleconsult_executable(), "serve", "--host", self.listen]
        command += ["--port", str(self.port)]
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
            )

    async def _wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        last_error = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(
                        f"teleconsult serve exited with {self.process.returncode} while starting:\n"
                        + self.log_tail()
                    )
                try:
                    async with http.get(f"{self.base_url}/healthz") as response:
                        if response.status == 200:
                            return
                        last_error = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last_error = repr(exc)
                await asyncio.sleep(0.05)
        raise TimeoutError(
            f"teleconsult serve not healthy within {seconds}s ({last_error}):\n" + self.log_tail()
        )

    def token(
        self,
        sub: str,
        role: str,
        hospital: str,
        name: str | None = None,
        ttl: int = 3600,
        consult: str | None = None,
    ) -> str:
        """A JWT minted by ``teleconsult token`` with this server's settings."""
        command = [_teleconsult_executable(), "token", "--sub", sub, "--role", role]
        command += ["--hospital", hospital, "--ttl", str(ttl)]
        if name is not None:
            command += ["--name", name]
        if consult is not None:
            command += ["--consult", consult]
        result = subprocess.run(
            command,
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"teleconsult token failed ({result.returncode}): {result.stderr}")
        token = result.stdout.strip()
        register_secret(token)
        return token

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, grace: float = SERVER_STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    async def restart(self, *, crash: bool = True) -> None:
        """Kill (``crash=False``: stop gracefully), start again on the same port and data."""
        if crash:
            self.kill()
        else:
            await asyncio.to_thread(self.stop)
        await self.start()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of its stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def server_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Awaitable[TeleconsultServer]]]:
    """Starts ``teleconsult serve`` processes: ``await server_factory(TELECONSULT_REDIS_URL=...)``.

    Each gets its own free port, data dir and JWT secret (unless given), JSON logs, media on
    127.0.0.1 and no ICE servers; keyword arguments are extra environment variables, but
    ``listen="0.0.0.0"`` makes one reachable from browsers in namespaces of their own, and
    ``port=`` gives one a port chosen beforehand (a cluster's nodes know each other's URLs). All are
    stopped at teardown (SIGTERM, SIGKILL after 5 s); a failed test prints their log tails and
    keeps the logs in ``test-artifacts/<test name>/``.
    """
    servers: list[TeleconsultServer] = []

    async def start(
        *, listen: str = "127.0.0.1", port: int | None = None, **env: str
    ) -> TeleconsultServer:
        root = tmp_path_factory.mktemp("server")
        data_dir = root / "data"
        data_dir.mkdir()
        values = clean_environ()
        values.update(
            {
                "TELECONSULT_DATA_DIR": str(data_dir),
                "TELECONSULT_MEDIA_ADDRESSES": "127.0.0.1",
                "TELECONSULT_ICE_SERVERS": "[]",
                "TELECONSULT_JWT_SECRET": secrets.token_urlsafe(32),
                "TELECONSULT_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            }
        )
        values.update(env)
        port = port or free_tcp_port()
        # Join links name the address pages are opened at, whatever the server listens on.
        values.setdefault("TELECONSULT_PUBLIC_URL", f"http://127.0.0.1:{port}")
        server = TeleconsultServer(data_dir, values, port, listen)
        servers.append(server)
        await server.start()
        return server

    yield start

    failed = has_failed(request.node)
    for server in servers:
        server.stop()
        if failed:
            sys.stderr.write(f"\n--- {server!r} log tail ---\n{server.log_tail()}\n")
            shutil.copy(server.log_path, artifacts_dir(request.node) / server.log_path.name)


@pytest.fixture
async def server(server_factory: Callable[..., Awaitable[TeleconsultServer]]) -> TeleconsultServer:
    """One running teleconsult server with the test defaults (embedded SQLite in its data dir)."""
    return await server_factory()
