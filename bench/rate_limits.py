"""
Benchmark: what the rate limiter adds to every Socket.IO event and REST write.

Each event counts against ``events`` (per identity) and, for ``chat``, against ``chat`` too: one
:meth:`signaling.limits.Limiter.hit` each. This times hits of the default limits, spread over
200 identities, counted in the process (no ``TELECONSULT_REDIS_URL``) and in Redis (a private
``redis-server`` started on a free port of 127.0.0.1, as a deployment of several processes
counts). Per hit: wall time p50 and p95, and this process's CPU time (the Redis server's own CPU
is not included).

Run: ``.venv/bin/python bench/rate_limits.py [--hits 20000]``. The last line printed is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from config.settings import Settings
from signaling.limits import Limiter, limits_from_settings

IDENTITIES = 200


async def time_hits(limiter: Limiter, hits: int) -> dict[str, float]:
    """Hit ``events`` ``hits`` times over the identities; per-hit wall p50/p95 and CPU, in µs."""
    walls: list[float] = []
    cpu = time.process_time()
    for n in range(hits):
        started = time.perf_counter()
        await limiter.hit("events", f"h-east/person-{n % IDENTITIES}")
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    walls.sort()
    return {
        "p50_us": round(statistics.median(walls) * 1e6, 1),
        "p95_us": round(walls[int(len(walls) * 0.95)] * 1e6, 1),
        "cpu_us": round(cpu / hits * 1e6, 1),
    }


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server without persistence; the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed")
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    process = subprocess.Popen(
        [*command, "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("redis-server did not start")


async def main(hits: int) -> dict[str, Any]:
    # Limits high enough that every hit is counted and none refused.
    settings = Settings(rate_limit_events=f"{hits * 2} per 10 minutes")
    limits = limits_from_settings(settings)
    result: dict[str, Any] = {"hits": hits, "identities": IDENTITIES}
    result["in_process"] = await time_hits(Limiter(limits), hits)
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_redis(Path(folder))
        try:
            limiter = Limiter(limits, url)
            result["redis"] = await time_hits(limiter, hits)
            await limiter.close()
        finally:
            process.terminate()
            process.wait(10)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--hits", type=int, default=20_000)
    figures = asyncio.run(main(parser.parse_args().hits))
    for where in ("in_process", "redis"):
        f = figures[where]
        print(f"{where:>10}: p50 {f['p50_us']} µs, p95 {f['p95_us']} µs, CPU {f['cpu_us']} µs/hit")
    print(json.dumps(figures))
