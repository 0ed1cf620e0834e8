"""`make run` (``teleconsult serve --demo``): the demo's links come last, once they work."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import ClientSession

from signaling.cli import LISTEN_BACKLOG
from tests.conftest import clean_environ, free_tcp_port

RULE = "=" * 72


async def start_serve(data_dir: Path, port: int, *args: str) -> asyncio.subprocess.Process:
    """``teleconsult serve`` on ``port`` with the embedded database in ``data_dir``."""
    env = {
        **clean_environ(),
        "TELECONSULT_DATA_DIR": str(data_dir),
        "TELECONSULT_PORT": str(port),
        "TELECONSULT_MEDIA_ADDRESSES": "127.0.0.1",
    }
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "teleconsult"),
        "serve",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_serve_with_a_demo_prints_its_links_last_once_listening(tmp_path: Path) -> None:
    port = free_tcp_port()
    process = await start_serve(tmp_path, port, "--demo")
    assert process.stdout is not None and process.stderr is not None
    try:
        banner: list[str] = []
        while banner.count(RULE) < 2:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, "serve stopped before it printed the links"
            banner.append(line.decode().rstrip())
        links = [line.split(": ", 1)[1] for line in banner if "/join/" in line]
        async with ClientSession() as http:
            for url in links:
                async with http.get(url) as response:
                    assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    assert banner[0] == RULE
    assert banner[1] == "Demo visit scheduled. Open each link in its own browser window:"
    assert [line.split()[0] for line in banner[3:5]] == ["doctor", "patient"]
    assert banner[-2:] == ["The server runs until you press Ctrl+C.", RULE]
    assert all(link.startswith(f"http://127.0.0.1:{port}/join/") for link in links)
    logs = [json.loads(line) for line in (await process.stderr.read()).decode().splitlines()]
    assert "serving" in [entry["msg"] for entry in logs]
    assert not [entry for entry in logs if entry["logger"].startswith("alembic")]


async def test_serve_queues_a_burst_of_connections_while_its_loop_is_busy(tmp_path: Path) -> None:
    # aiohttp's default backlog (128) overflowed at 250 arrivals a second on a busy node: each
    # dropped client waited a second or more for its SYN's retransmission.
    port = free_tcp_port()
    process = await start_serve(tmp_path, port)
    try:
        async with ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                await asyncio.sleep(0.1)
        ss = await asyncio.create_subprocess_exec(
            "ss", "-Hltn", f"sport = :{port}", stdout=asyncio.subprocess.PIPE
        )
        listening = (await ss.communicate())[0].decode().split()
        assert int(listening[2]) == LISTEN_BACKLOG  # a listening socket's Send-Q: its backlog
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
