"""
Benchmark: Socket.IO clients connecting and joining through the cluster at a given rate, and the
server's CPU per offer against a bare python-socketio echo server in the same run.

Two arms, one after the other, each with the same client load from ``--processes`` client
processes (this script's ``clients`` role, python-socketio ``AsyncClient`` over WebSocket):

* **echo**: a bare python-socketio ``AsyncServer`` on aiohttp (this script's ``echo`` role)
  that accepts every connection, acknowledges ``join`` and answers ``publish`` with the SDP it
  was sent.
* **cluster**: ``--nodes`` ``teleconsult serve`` nodes (``bench/cluster_nodes.py``), with
  ``--clients`` / 2 visits scheduled: each doctor and each patient is one client. Client ``i``
  connects to node ``i mod nodes`` and follows the join's redirect to the consult's media node
  (half of them are redirected), as the web page does. Doctors join, patients enter the lobby.

Phase 1, joins: client ``i`` starts at ``i / --rate`` s; its latency is from the start of its
connection to the join's acknowledgement (a redirect's second connection and join included).
Phase 2, offers: every joined doctor (``--clients`` / 2 of them) sends ``publish`` with a real
SDP offer of an aiortc peer (sendonly VP8 and Opus), made once before the run so the clients
spend no CPU on it, at ``--offer-rate`` per second. Our design has no relayed offer: the join
sends the client to the media node, which answers the offer itself (docs/cluster.md). So the
figures are the server's CPU per offer *handled*, each from /proc (utime + stime) over the
phase, divided by the offers answered:

* ``server_cpu_ms_per_offer``: the nodes' total, Socket.IO and media together;
* ``media_engine_cpu_ms_per_offer``: a third arm, the same number of offers at the same rate
  answered by ``media``'s ``MediaServer`` directly, in a process without Socket.IO (this
  script's ``media`` role; each offer in a consult of its own, as each doctor's is), after
  the cluster is stopped: creating the two aiortc peer connections, parsing the offer,
  answering it, ICE gathering on loopback, and the connectivity checks that then go on
  towards the offer's candidates, which nobody answers (as in the cluster arm);
* ``signaling_cpu_ms_per_offer``: the total minus the media engine's, what Socket.IO, the
  event's checks and the node's other work cost per offer;

each also as a ratio to the echo server's CPU per echoed offer (``*_ratio_vs_echo``).

``clients_cpu_pct_during_joins`` is the client processes' CPU over phase 1 (100 = one core):
they run on the same cores as the servers, so a high figure means the clients took CPU the
nodes could have used (and may not have kept to the rate).

``listen_overflows_during_joins`` is the machine's ``TcpExt ListenOverflows`` (from
/proc/net/netstat) over phase 1: connections the kernel dropped because a listen queue was
full (anyone's, though the arm's server is the one taking 250 connections a second); each
costs its client a SYN retransmission, 1 s or more of join latency.

Redis commands per join come from the private Redis's ``INFO commandstats`` over phase 1
(``redis_per_join_by_command``: the six most called).

Run: ``.venv/bin/python bench/signaling.py`` (1,000 clients at 250/s, about 2 minutes); the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import socketio
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from bench.cluster_nodes import (
    Cluster,
    CommandProcess,
    arrive,
    free_port,
    load_average,
    patient_token,
    running_cluster,
)
from bench.sfu import cpu_seconds
from media import MediaConfig, MediaServer
from rooms.identity import Role
from signaling.cli import LISTEN_BACKLOG
from tests.integration.live import SignalingClient

logger = logging.getLogger(__name__)

REPLY_GUARD = 300.0
CALL_GUARD = 60.0


# --------------------------------------------------------------------------- the echo server


async def run_echo() -> None:
    """A bare python-socketio server: accepts all, acks ``join``, echoes ``publish``'s SDP."""
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)

    @sio.on("join")
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "status": "joined", "participant": {"participant_id": sid}}

    @sio.on("publish")
    async def publish(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "sdp": data["sdp"]}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=LISTEN_BACKLOG).start()
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


# --------------------------------------------------------------------------- the media engine alone


async def run_media() -> None:
    """``media``'s server without Socket.IO: answers each ``offer`` command's offers at its
    rate, each in a consult of its own, as a node's media does for the joined doctors."""
    server = MediaServer(MediaConfig(addresses=["127.0.0.1"]))

    async def send(event: str, payload: dict[str, Any]) -> None:
        """No subscriber offer goes anywhere: every consult has one participant."""

    print(json.dumps({"ok": True}), flush=True)  # ready: the imports are outside the figure
    while line := await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        if command["do"] == "close":
            await server.shutdown()
            print(json.dumps({"ok": True}), flush=True)
            return
        for n in range(command["offers"]):
            await at(command["start"] + n / command["rate"])
            participant = await server.room(f"offer-{n}").join("doctor", send)
            await participant.handle_publisher_offer(command["sdp"], command["sources"])
        print(json.dumps({"ok": True}), flush=True)


# --------------------------------------------------------------------------- the clients' side


async def serve_clients(replies: TextIO) -> None:
    """This process's clients, driven by JSON lines on stdin: ``join`` (client specs, the
    start time and the total rate), ``offer`` (the SDP, start time, rate), ``close``."""
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=1 << 24)  # a command carries many clients' tokens
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    joined: list[tuple[SignalingClient, dict[str, Any]]] = []
    while line := await commands.readline():
        command = json.loads(line)
        if command["do"] == "join":
            reply = await join_all(command, joined)
        elif command["do"] == "offer":
            reply = await offer_all(command, joined)
        elif command["do"] == "ready":
            reply = {}
        else:
            await asyncio.gather(*(c.close() for c, _ in joined), return_exceptions=True)
            reply = {}
        replies.write(json.dumps({"ok": True, **reply}) + "\n")
        replies.flush()
        if command["do"] == "close":
            return


async def at(moment: float) -> None:
    """Sleep until the wall-clock time ``moment`` (the processes share the clock)."""
    await asyncio.sleep(max(0.0, moment - time.time()))


async def join_all(
    command: dict[str, Any], joined: list[tuple[SignalingClient, dict[str, Any]]]
) -> dict[str, Any]:
    """Connect and join each client at its moment; the latencies and failures."""

    async def one(spec: dict[str, Any]) -> float | str:
        await at(command["start"] + spec["index"] / command["rate"])
        started = time.perf_counter()
        try:
            client, ack = await arrive(
                spec["urls"], spec["index"], spec["token"], spec["consult_id"], CALL_GUARD
            )
        except Exception as exc:  # a failure is a figure of the benchmark, not its end
            return repr(exc)[:200]
        latency = time.perf_counter() - started
        joined.append((client, ack))
        return latency

    results = await asyncio.gather(*(one(spec) for spec in command["clients"]))
    return {
        "latencies": [r for r in results if isinstance(r, float)],
        "failures": [r for r in results if isinstance(r, str)],
    }


async def offer_all(
    command: dict[str, Any], joined: list[tuple[SignalingClient, dict[str, Any]]]
) -> dict[str, Any]:
    """Each joined (not waiting) client publishes the same offer at its moment."""
    offer = {"type": "offer", "sdp": command["sdp"], "sources": command["sources"]}
    senders = [c for c, ack in joined if ack["status"] == "joined"]

    async def one(client: SignalingClient, index: int) -> float | str:
        await at(
            command["start"] + (command["offset"] + index * command["stride"]) / command["rate"]
        )
        started = time.perf_counter()
        try:
            ack = await client.call("publish", offer, timeout=CALL_GUARD)
        except Exception as exc:  # a failure is a figure of the benchmark
            return repr(exc)[:200]
        if not ack.get("ok"):
            return str(ack.get("error", {}).get("code"))
        return time.perf_counter() - started

    results = await asyncio.gather(*(one(c, n) for n, c in enumerate(senders)))
    return {
        "latencies": [r for r in results if isinstance(r, float)],
        "failures": [r for r in results if isinstance(r, str)],
    }


# --------------------------------------------------------------------------- orchestration


class MediaProcess(CommandProcess):
    """The orchestrator's handle on the ``media`` process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__(process, "media", REPLY_GUARD, close_seconds=60)

    @classmethod
    async def start(cls) -> MediaProcess:
        """Start a process of this script in the ``media`` role."""
        media = cls(await cls.spawn(__file__, "media"))
        assert media.process.stdout is not None
        await asyncio.wait_for(media.process.stdout.readline(), REPLY_GUARD)
        return media

    async def answer(self, offers: int, offer: tuple[str, dict[str, str]], rate: float) -> float:
        """Answer ``offers`` offers at ``rate`` per second; its CPU seconds per offer."""
        start = time.time() + 1.0
        cpu0 = cpu_seconds(self.process.pid)
        await self.call(
            {
                "do": "offer",
                "offers": offers,
                "sdp": offer[0],
                "sources": offer[1],
                "start": start,
                "rate": rate,
            }
        )
        return (cpu_seconds(self.process.pid) - cpu0) / max(1, offers)


class ClientsProcess(CommandProcess):
    """The orchestrator's handle on one ``clients`` process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__(process, "clients", REPLY_GUARD, close_seconds=60)

    @classmethod
    async def start(cls) -> ClientsProcess:
        """Start a process of this script in the ``clients`` role."""
        clients = cls(await cls.spawn(__file__, "clients"))
        await clients.call({"do": "ready"})  # its imports are outside the figures
        return clients


async def premade_offer() -> tuple[str, dict[str, str]]:
    """A real aiortc publisher's offer (sendonly camera and microphone), and its sources."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    camera = pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    microphone = pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    sources = {str(camera.mid): "camera", str(microphone.mid): "microphone"}
    await pc.close()
    return sdp, sources


def listen_overflows() -> int:
    """The machine's count of connections dropped because a listen queue was full."""
    lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] == "TcpExt:":
            return int(values[names.index("ListenOverflows")])
    return 0


def percentile(values: list[float], fraction: float) -> float | None:
    """The value at ``fraction`` of the sorted values (nearest rank), in ms."""
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 1)


async def run_arm(
    name: str,
    specs: list[dict[str, Any]],
    server_cpu: Any,
    args: argparse.Namespace,
    offer: tuple[str, dict[str, str]],
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Both phases of one arm; ``server_cpu()`` is the server side's CPU seconds so far."""
    processes = [await ClientsProcess.start() for _ in range(args.processes)]
    try:

        def clients_cpu() -> float:
            return sum(cpu_seconds(p.process.pid) for p in processes)

        start = time.time() + 2.0
        cpu0, wall0, clients0 = server_cpu(), time.time(), clients_cpu()
        overflows0 = listen_overflows()
        redis0 = cluster.redis_calls() if cluster else {}
        replies = await asyncio.gather(
            *(
                p.call(
                    {
                        "do": "join",
                        "clients": specs[n :: args.processes],
                        "start": start,
                        "rate": args.rate,
                    }
                )
                for n, p in enumerate(processes)
            )
        )
        join_cpu = server_cpu() - cpu0
        join_wall = time.time() - max(wall0, start)
        join_clients_cpu = clients_cpu() - clients0
        overflows = listen_overflows() - overflows0
        redis1 = cluster.redis_calls() if cluster else {}
        redis_joins = {name: calls - redis0.get(name, 0) for name, calls in redis1.items()}
        latencies = [x for r in replies for x in r["latencies"]]
        failures = [x for r in replies for x in r["failures"]]
        print(f"  {name}: {len(latencies)} joined, {len(failures)} failed", flush=True)
        await asyncio.sleep(2.0)
        start = time.time() + 1.0
        cpu0 = server_cpu()
        replies = await asyncio.gather(
            *(
                p.call(
                    {
                        "do": "offer",
                        "sdp": offer[0],
                        "sources": offer[1],
                        "start": start,
                        "rate": args.offer_rate,
                        "offset": n,
                        "stride": args.processes,
                    }
                )
                for n, p in enumerate(processes)
            )
        )
        offer_cpu = server_cpu() - cpu0
        offer_latencies = [x for r in replies for x in r["latencies"]]
        offer_failures = [x for r in replies for x in r["failures"]]
    finally:
        await asyncio.gather(*(p.close() for p in processes))
    offers = len(offer_latencies)
    result = {
        "joined": len(latencies),
        "join_failures": len(failures),
        "join_failure_examples": sorted(set(failures))[:3],
        "join_ms_p50": percentile(latencies, 0.5),
        "join_ms_p99": percentile(latencies, 0.99),
        "join_ms_max": percentile(latencies, 1.0),
        "server_cpu_pct_during_joins": round(100 * join_cpu / join_wall, 1),
        "server_cpu_ms_per_join": round(1000 * join_cpu / max(1, len(latencies)), 2),
        "clients_cpu_pct_during_joins": round(100 * join_clients_cpu / join_wall, 1),
        "listen_overflows_during_joins": overflows,
        "offers": offers,
        "offer_failures": len(offer_failures),
        "offer_failure_examples": sorted(set(offer_failures))[:3],
        "offer_ms_p50": percentile(offer_latencies, 0.5),
        "offer_ms_p99": percentile(offer_latencies, 0.99),
        "server_cpu_ms_per_offer": round(1000 * offer_cpu / max(1, offers), 3),
    }
    if cluster:
        joined = max(1, len(latencies))
        result["redis_commands_per_join"] = round(sum(redis_joins.values()) / joined, 1)
        busiest = sorted(redis_joins.items(), key=lambda item: -item[1])[:6]
        result["redis_per_join_by_command"] = {
            name: round(calls / joined, 2) for name, calls in busiest
        }
    print(f"  {name}: {json.dumps(result)}", flush=True)
    return result


async def orchestrate(args: argparse.Namespace) -> None:
    """The echo arm, then the cluster arm, with the same clients, rates and offer."""
    print(f"load average before: {load_average()} on {os.cpu_count()} cores", flush=True)
    offer = await premade_offer()
    echo = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "echo",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert echo.stdout is not None and echo.stdin is not None
    port = (await echo.stdout.readline()).decode().split()[1]
    echo_url = f"http://127.0.0.1:{port}"
    echo_specs = [
        {"index": i, "urls": [echo_url], "token": "x", "consult_id": "c"}
        for i in range(args.clients)
    ]
    try:
        echo_result = await run_arm("echo", echo_specs, lambda: cpu_seconds(echo.pid), args, offer)
    finally:
        echo.stdin.write(b"stop\n")
        await echo.stdin.drain()
        await echo.wait()
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as folder:
        async with running_cluster(args.nodes, Path(folder)) as cluster:
            async with aiohttp.ClientSession() as http:
                consults = await cluster.schedule_visits(http, (args.clients + 1) // 2, "s")
            specs = []
            for consult in consults:
                doctor = next(p for p in consult["participants"] if p["role"] == "doctor")
                for token in (cluster.token(doctor["sub"], Role.DOCTOR), patient_token(consult)):
                    specs.append(
                        {"token": token, "consult_id": consult["id"], "urls": cluster.urls}
                    )
            specs = [{**spec, "index": i} for i, spec in enumerate(specs[: args.clients])]
            cluster_result = await run_arm(
                "cluster", specs, cluster.cpu_seconds, args, offer, cluster
            )
    media = await MediaProcess.start()
    try:
        engine = 1000 * await media.answer(cluster_result["offers"], offer, args.offer_rate)
    finally:
        await media.close()
    echo_ms = echo_result["server_cpu_ms_per_offer"]
    total_ms = cluster_result["server_cpu_ms_per_offer"]
    summary = {
        "clients": args.clients,
        "rate_per_s": args.rate,
        "nodes": args.nodes,
        "join_ms_p50": cluster_result["join_ms_p50"],
        "join_ms_p99": cluster_result["join_ms_p99"],
        "join_failures": cluster_result["join_failures"],
        "echo_join_ms_p99": echo_result["join_ms_p99"],
        "server_cpu_ms_per_join": cluster_result["server_cpu_ms_per_join"],
        "redis_commands_per_join": cluster_result["redis_commands_per_join"],
        "offers": cluster_result["offers"],
        "server_cpu_ms_per_offer": total_ms,
        "media_engine_cpu_ms_per_offer": round(engine, 3),
        "signaling_cpu_ms_per_offer": round(total_ms - engine, 3),
        "echo_cpu_ms_per_offer": echo_ms,
        "cpu_per_offer_ratio_vs_echo": round(total_ms / echo_ms, 1),
        "media_engine_ratio_vs_echo": round(engine / echo_ms, 1),
        "signaling_ratio_vs_echo": round((total_ms - engine) / echo_ms, 1),
        "clients_cpu_pct_during_joins": cluster_result["clients_cpu_pct_during_joins"],
        "echo_clients_cpu_pct_during_joins": echo_result["clients_cpu_pct_during_joins"],
        "listen_overflows_during_joins": cluster_result["listen_overflows_during_joins"],
        "echo_listen_overflows_during_joins": echo_result["listen_overflows_during_joins"],
        "load_average": load_average(),
    }
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument(
        "role", nargs="?", default="bench", choices=["bench", "clients", "echo", "media"]
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=250.0, help="connections + joins per second")
    parser.add_argument("--offer-rate", type=float, default=50.0, help="offers per second")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.role == "echo":
        asyncio.run(run_echo())
    elif args.role == "media":
        asyncio.run(run_media())
    elif args.role == "clients":
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt replies
        asyncio.run(serve_clients(replies))
    else:
        asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
