"""
Benchmark: how long a late joiner waits for video, in a busy 8-party conference and in an idle one.

Every party is a process of its own on loopback: the real server (``teleconsult serve`` on the
embedded defaults: SQLite, in-process registry), and synthetic participants
(``tests/webrtc/synthetic_experts.py``: aiortc clients that publish pre-encoded 320x240 30 fps
VP8 plus Opus and count the frames they receive at the RTP level, as the conference test does).

* idle: a conference where only the host publishes; an expert joins.
* loaded: a conference where seven participants publish to each other (42 video and 42 audio
  streams forwarded), then an eighth joins.

Each late joiner runs in a fresh process and leaves before the next one comes, so every
round joins the same conference size. Per late joiner: the join's acknowledgement (seconds
after the ``join`` event was sent), and its first usable frame from every sender (the last of
them, seconds after the ``join`` event: that is when the joiner sees everyone). The server's
own view comes from its ``/metrics``: ``teleconsult_join_seconds`` (the join handler) and
``teleconsult_event_loop_lag_seconds`` over each arm, and its CPU from /proc.

Run: ``.venv/bin/python bench/join.py`` (about 2 minutes). The last line printed is one JSON
object; ``loaded_over_idle`` is the ratio of the median times to every sender's first frame
(issue 15's target: at most 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sfu import cpu_seconds
from rooms.identity import Identity, Role
from signaling.auth import TokenIssuer
from tests.webrtc.synthetic_experts import Expert, SyntheticExperts

HOSPITAL = "h-bench"
ISSUER = AUDIENCE = "teleconsult"
PUBLISHERS = {"idle": 1, "loaded": 7}
#: Publishers per synthetic-participant process, so that no client process starves.
PER_PROCESS = 4
SETTLE = 3.0
HANG_GUARD = 60.0


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``teleconsult serve`` on a fresh data folder, with a known HS256 secret.

    :param folder: Its data folder.
    """

    def __init__(self, folder: Path) -> None:
        self.secret = secrets.token_urlsafe(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = TokenIssuer("HS256", self.secret, ISSUER, AUDIENCE)
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("TELECONSULT_")
        }
        env.update(
            TELECONSULT_DATA_DIR=str(folder),
            TELECONSULT_JWT_SECRET=self.secret,
            TELECONSULT_MEDIA_ADDRESSES="127.0.0.1",
            TELECONSULT_LOG_LEVEL="WARNING",
        )
        executable = Path(sys.executable).with_name("teleconsult")
        self.process = subprocess.Popen(
            [str(executable), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "server.log").open("wb"),
        )

    async def ready(self) -> None:
        """Wait until ``/healthz`` answers."""
        deadline = time.monotonic() + HANG_GUARD
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("the server did not start")

    def token(self, sub: str, role: Role) -> str:
        """An identity token of this server's issuer."""
        return self.issuer.mint(Identity(sub, sub, role, HOSPITAL), 3600)

    async def schedule(self, experts: list[str]) -> dict[str, Any]:
        """A conference hosted by ``host`` with these experts invited."""
        body = {
            "kind": "conference",
            "hospital": HOSPITAL,
            "title": "bench",
            "scheduled_at": datetime.now(UTC).isoformat(),
            "host": {"sub": "host", "name": "Host", "role": "doctor"},
            "participants": [{"sub": s, "name": s, "role": "expert"} for s in experts],
        }
        headers = {"Authorization": f"Bearer {self.token('coordinator', Role.COORDINATOR)}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/api/consults", json=body, headers=headers) as response,
        ):
            assert response.status == 201, await response.text()
            return dict(await response.json())

    async def metrics(self) -> dict[str, float]:
        """The join and event-loop-lag histograms' sums and counts."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/metrics") as response:
            text = await response.text()
        found = {}
        for name in ("teleconsult_join_seconds", "teleconsult_event_loop_lag_seconds"):
            for part in ("sum", "count"):
                match = re.search(rf"^{name}_{part} (\S+)$", text, re.MULTILINE)
                found[f"{name}_{part}"] = float(match.group(1)) if match else 0.0
        return found

    def stop(self) -> None:
        """SIGTERM, then wait."""
        self.process.terminate()
        self.process.wait(10)


def experts_of(server: Server, subs: list[str]) -> list[Expert]:
    """Synthetic experts for these subjects, each with their own identity token (staff links
    carry no token)."""
    return [Expert(sub=sub, token=server.token(sub, Role.EXPERT), name=sub) for sub in subs]


async def run_arm(server: Server, arm: str, rounds: int) -> dict[str, Any]:
    """One conference with its publishers, then ``rounds`` late joiners one after another."""
    publishers = ["host"] + [f"ex-{n}" for n in range(1, PUBLISHERS[arm])]
    late = [f"late-{n}" for n in range(rounds)]
    consult = await server.schedule(publishers[1:] + late)
    pid = {p["sub"]: p["participant_id"] for p in consult["participants"]}
    groups = [publishers[i : i + PER_PROCESS] for i in range(0, len(publishers), PER_PROCESS)]
    processes = [await SyntheticExperts.start(server.url, experts_of(server, g)) for g in groups]
    try:
        await asyncio.gather(
            *(p.join(consult["id"], g) for p, g in zip(processes, groups, strict=True))
        )
        await asyncio.sleep(SETTLE)
        before, cpu_before = await server.metrics(), cpu_seconds(server.process.pid)
        started = time.monotonic()
        acks: list[float] = []
        everyone: list[float] = []
        steps: dict[str, list[float]] = {}
        for sub in late:
            joiner = await SyntheticExperts.start(server.url, experts_of(server, [sub]))
            try:
                await joiner.join(consult["id"], [sub])
                deadline = time.monotonic() + HANG_GUARD
                while True:
                    report = (await joiner.report())[sub]
                    firsts = [report.first_frame_after_join(pid[p]) for p in publishers]
                    if all(f is not None for f in firsts) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                acks.append(report.milestones["joined"] - report.joined_at)
                for step, at in report.milestones.items():
                    steps.setdefault(step, []).append(at - report.joined_at)
                everyone.append(max(f if f is not None else HANG_GUARD for f in firsts))
                print(
                    f"{arm}: {sub} join acknowledged {acks[-1]:.3f} s, first frame per sender "
                    + " ".join(f"{f:.3f}" for f in sorted(f or HANG_GUARD for f in firsts)),
                    flush=True,
                )
            finally:
                await joiner.close()
            await asyncio.sleep(1.0)
        window = time.monotonic() - started
        cpu = 100 * (cpu_seconds(server.process.pid) - cpu_before) / window
        after = await server.metrics()
    finally:
        for process in processes:
            await process.close()

    def mean(name: str) -> float:
        count = after[f"{name}_count"] - before[f"{name}_count"]
        return (after[f"{name}_sum"] - before[f"{name}_sum"]) / count if count else 0.0

    return {
        "senders": len(publishers),
        "join_ack_s_median": round(statistics.median(acks), 3),
        "first_frame_from_all_s_median": round(statistics.median(everyone), 3),
        "first_frame_from_all_s_max": round(max(everyone), 3),
        **{f"{step}_s_median": round(statistics.median(at), 3) for step, at in steps.items()},
        "server_join_handler_s_mean": round(mean("teleconsult_join_seconds"), 4),
        "event_loop_lag_s_mean": round(mean("teleconsult_event_loop_lag_seconds"), 4),
        "server_cpu_pct": round(cpu, 1),
    }


async def orchestrate(rounds: int) -> None:
    """Both arms against one server, idle first."""
    with tempfile.TemporaryDirectory(prefix="bench-join-") as folder:
        server = Server(Path(folder))
        try:
            await server.ready()
            results = {arm: await run_arm(server, arm, rounds) for arm in ("idle", "loaded")}
        finally:
            server.stop()
    idle, loaded = results["idle"], results["loaded"]
    ratio = loaded["first_frame_from_all_s_median"] / idle["first_frame_from_all_s_median"]
    for arm, figures in results.items():
        print(f"{arm}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    print(f"loaded / idle, median time to video from every sender: {ratio:.2f}")
    summary = {
        **{f"{arm}_{k}": v for arm, figures in results.items() for k, v in figures.items()},
        "loaded_over_idle": round(ratio, 2),
        "load_average": load_average(),
    }
    print(json.dumps(summary))


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--rounds", type=int, default=5, help="late joiners per arm")
    args = parser.parse_args()
    asyncio.run(orchestrate(args.rounds))


if __name__ == "__main__":
    main()
