"""
Benchmark: how many 1:1 visits a cluster holds on this machine, on 1 node and on 2 nodes.

The nodes are ``teleconsult serve`` processes (``bench/cluster_nodes.py``: a fresh PostgreSQL
database, a private Redis). Visits are driven by synthetic aiortc clients in processes of their
own (this script's ``visits`` role, ``--per-process`` visits each): a doctor and a patient who
both publish ``bench/sfu.py``'s pre-encoded 640x480 30 fps VP8 (about 1 Mbit/s) and Opus, and
count the usable frames they receive at the RTP level (``tests.webrtc.synthetic``). Each
participant reaches a node of its own (doctor the first, patient the next) and follows the
join's redirect to the consult's media node; the patient waits in the lobby until the doctor
admits them. Visits are added ``--step`` at a time; after each step settles, one window of
``--seconds``: per visit and direction the received frame rate and frame loss (the larger of
frames given up on after NACK and the shortfall against the 30 fps sent). The run stops at the
first step where a visit loses more than 1 % of its frames or falls under 25 fps in either
direction (or at ``--max-visits``); the visits held are those of the last good step.

CPU comes from /proc (utime + stime) over each window: of the node processes (the server's
cost), and of the client processes, which share the two cores with the nodes and usually run
out first. CPU per visit is the least-squares slope of the nodes' CPU over all measured steps
(from zero visits, the failing step included: the server's cost does not depend on whether the
clients kept up), visits per core = 100 % / that slope: what one core of server
would hold if the clients ran elsewhere. Redis commands per second per visit come from the
private Redis's ``INFO commandstats`` over the same windows.

Run: ``.venv/bin/python bench/cluster.py`` (about 5 minutes); the last line is one JSON object.
"""

# The clients' process polls its peers' counters between commands:
# ruff: noqa: ASYNC110

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.cluster_nodes import (
    Cluster,
    CommandProcess,
    arrive,
    load_average,
    patient_token,
    running_cluster,
)
from bench.sfu import FPS, cpu_seconds, load_media, pre_encode, slope
from media.aiortc_hooks import route_retransmissions, tolerate_consent_delays, use_host_addresses
from rooms.identity import Role
from tests.webrtc.synthetic import EncodedClip, SyntheticParticipant

logger = logging.getLogger(__name__)

MAX_LOSS_PCT, MIN_FPS = 1.0, 25.0
SETTLE = 3.0
#: How long new visits may take to show video both ways before the step counts as failed.
START_GUARD = 45.0
REPLY_GUARD = 120.0
ADAPTATION = ("teleconsult_forwarded_video_seconds_total", "teleconsult_audio_only_seconds_total")


# --------------------------------------------------------------------------- the clients' side


class Visit:
    """A doctor and a patient of one consult, both publishing, each counting the other."""

    def __init__(self, doctor: SyntheticParticipant, patient: SyntheticParticipant) -> None:
        self.doctor = doctor
        self.patient = patient

    @classmethod
    async def start(cls, spec: dict[str, Any], clip: EncodedClip) -> Visit:
        """Join both (the patient through the next node), admit the patient, publish both."""
        urls, first = spec["urls"], spec["first"]
        doctor_link, doctor_ack = await arrive(urls, first, spec["doctor"], spec["consult_id"])
        patient_link, patient_ack = await arrive(
            urls, first + 1, spec["patient"], spec["consult_id"]
        )
        patient_id = patient_ack["participant"]["participant_id"]
        admitted = await doctor_link.call("admit", {"participant_id": patient_id})
        assert admitted.get("ok"), admitted
        if patient_ack["status"] == "lobby":
            await patient_link.next("admitted", timeout=REPLY_GUARD)
        doctor = SyntheticParticipant("doctor", doctor_link, clip)
        patient = SyntheticParticipant("patient", patient_link, clip)
        await doctor.enter(doctor_ack)
        await patient.enter(patient_ack)
        return cls(doctor, patient)

    def frames(self) -> dict[str, list[int]]:
        """Per direction, usable frames received and frames given up on, so far."""
        counts = {}
        for direction, receiver, sender in (
            ("to_patient", self.patient, self.doctor),
            ("to_doctor", self.doctor, self.patient),
        ):
            got = receiver.received.get((sender.participant_id, "camera"))
            counts[direction] = [got.frames, got.lost_frames] if got else [0, 0]
        return counts

    async def close(self) -> None:
        """Leave."""
        await asyncio.gather(self.doctor.close(), self.patient.close(), return_exceptions=True)


async def serve_visits(media: Path, replies: TextIO) -> None:
    """This process's visits, driven by JSON lines on stdin: ``add`` (a list of visit specs;
    replies once each shows video both ways), ``report`` (frame counts per visit, with this
    process's clock), ``close``."""
    use_host_addresses(["127.0.0.1"])
    route_retransmissions()
    tolerate_consent_delays()
    video, audio = load_media(media)
    clip = EncodedClip(video=video, audio=audio)
    visits: list[Visit] = []
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=1 << 24)  # a command carries many clients' tokens
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():
        command = json.loads(line)
        reply: dict[str, Any] = {"ok": True}
        if command["do"] == "add":
            try:
                added = [await Visit.start(spec, clip) for spec in command["visits"]]
                visits += added
                deadline = time.monotonic() + START_GUARD
                while time.monotonic() < deadline and not all(
                    min(c[0] for c in v.frames().values()) >= FPS for v in added
                ):
                    await asyncio.sleep(0.1)
                reply["showing"] = sum(min(c[0] for c in v.frames().values()) >= FPS for v in added)
            except Exception as exc:
                logger.exception("adding visits failed")
                reply = {"ok": False, "error": repr(exc)}
        elif command["do"] == "report":
            reply["at"] = time.monotonic()
            reply["visits"] = [v.frames() for v in visits]
        else:
            await asyncio.gather(*(v.close() for v in visits), return_exceptions=True)
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
            return
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


# --------------------------------------------------------------------------- orchestration


class VisitsProcess(CommandProcess):
    """The orchestrator's handle on one ``visits`` process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__(process, "visits", REPLY_GUARD, close_seconds=30)
        self.count = 0

    @classmethod
    async def start(cls, media: Path) -> VisitsProcess:
        """Start a process of this script in the ``visits`` role."""
        return cls(await cls.spawn(__file__, "visits", "--media", str(media)))

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send a command, return its reply (raising when it failed)."""
        reply = await super().call(command)
        if not reply["ok"]:
            raise RuntimeError(f"visits process: {reply['error']}")
        return reply

    def cpu_seconds(self) -> float:
        """Its CPU time so far."""
        return cpu_seconds(self.process.pid)


def spec(cluster: Cluster, consult: dict[str, Any], n: int) -> dict[str, Any]:
    """What a visits process needs to run visit ``n``."""
    doctor = next(p for p in consult["participants"] if p["role"] == "doctor")["sub"]
    return {
        "urls": cluster.urls,
        "first": n,
        "consult_id": consult["id"],
        "doctor": cluster.token(doctor, Role.DOCTOR),
        "patient": patient_token(consult),
    }


async def window_figures(
    cluster: Cluster, processes: list[VisitsProcess], seconds: float
) -> dict[str, Any]:
    """Frame rates and loss per visit and direction, CPU and Redis commands, over one window."""
    node_cpu, client_cpu = cluster.cpu_seconds(), sum(p.cpu_seconds() for p in processes)
    commands, started = cluster.redis_commands(), time.monotonic()
    async with aiohttp.ClientSession() as http:
        adapted = {name: await cluster.metric_total(http, name) for name in ADAPTATION}
        before = [await p.call({"do": "report"}) for p in processes]
        await asyncio.sleep(seconds)
        after = [await p.call({"do": "report"}) for p in processes]
        for name in ADAPTATION:
            adapted[name] = await cluster.metric_total(http, name) - adapted[name]
    elapsed = time.monotonic() - started
    fps, loss = [], []
    for old, new in zip(before, after, strict=True):
        span = new["at"] - old["at"]
        for visit_old, visit_new in zip(old["visits"], new["visits"], strict=False):
            for direction, (frames, lost) in visit_new.items():
                got = frames - visit_old[direction][0]
                given_up = lost - visit_old[direction][1]
                expected = FPS * span
                fps.append(got / span)
                loss.append(100 * max(given_up / expected, 1 - got / expected, 0.0))
    return {
        "visits": sum(p.count for p in processes),
        "node_cpu_pct": round(100 * (cluster.cpu_seconds() - node_cpu) / elapsed, 1),
        "client_cpu_pct": round(
            100 * (sum(p.cpu_seconds() for p in processes) - client_cpu) / elapsed, 1
        ),
        "redis_commands_per_s": round((cluster.redis_commands() - commands) / elapsed, 1),
        "fps_min": round(min(fps), 1) if fps else None,
        "fps_median": round(statistics.median(fps), 1) if fps else None,
        "loss_pct_max": round(max(loss), 2) if loss else None,
        # Seconds of subscriber video the nodes forwarded, and of subscribers they put on
        # audio only (issue 10's adaptation to a weak link, read from the clients' feedback).
        "video_s": round(adapted["teleconsult_forwarded_video_seconds_total"], 1),
        "audio_only_s": round(adapted["teleconsult_audio_only_seconds_total"], 1),
    }


async def run_cluster(
    nodes: int, args: argparse.Namespace, media: Path, work: Path
) -> dict[str, Any]:
    """Add visits to a cluster of ``nodes`` nodes until one suffers; the figures of each step."""
    async with running_cluster(nodes, work / f"nodes-{nodes}") as cluster:
        async with aiohttp.ClientSession() as http:
            consults = await cluster.schedule_visits(http, args.max_visits, f"n{nodes}")
        processes: list[VisitsProcess] = []
        steps = []
        try:
            steps.append(await window_figures(cluster, processes, args.seconds))
            print(f"  {nodes} node(s):   0 visits: {json.dumps(steps[-1])}", flush=True)
            held = 0
            while held < args.max_visits:
                target = min(held + args.step, args.max_visits)
                adding: dict[int, list[dict[str, Any]]] = {}
                for n in range(held, target):
                    index = n // args.per_process
                    if index == len(processes):
                        processes.append(await VisitsProcess.start(media))
                    adding.setdefault(index, []).append(spec(cluster, consults[n], n))
                replies = await asyncio.gather(
                    *(processes[i].call({"do": "add", "visits": v}) for i, v in adding.items())
                )
                for index, visits in adding.items():
                    processes[index].count += len(visits)
                showing = sum(r["showing"] for r in replies)
                await asyncio.sleep(SETTLE)
                figures = await window_figures(cluster, processes, args.seconds)
                figures["showing_video"] = showing + held
                steps.append(figures)
                print(f"  {nodes} node(s): {target:3d} visits: {json.dumps(figures)}", flush=True)
                good = (
                    showing == target - held
                    and figures["loss_pct_max"] <= MAX_LOSS_PCT
                    and figures["fps_min"] >= MIN_FPS
                )
                if not good:
                    break
                held = target
        finally:
            await asyncio.gather(*(p.close() for p in processes))
    # The server's cost per visit does not depend on whether the clients kept up: every
    # measured step counts, the failing one too.
    per_visit = slope([(s["visits"], s["node_cpu_pct"]) for s in steps]) if len(steps) > 1 else 0
    redis_per_visit = (
        slope([(s["visits"], s["redis_commands_per_s"]) for s in steps]) if len(steps) > 1 else 0
    )
    last = steps[-1]
    return {
        "nodes": nodes,
        "visits_held": held,
        "stopped_by": "max_visits"
        if held == args.max_visits
        else "a visit under 25 fps or over 1 % loss",
        "server_cpu_pct_per_visit": round(per_visit, 2),
        "visits_per_core": round(100 / per_visit, 1) if per_visit > 0 else None,
        "visits_at_last_step": last["visits"],
        "node_cpu_pct_at_last_step": last["node_cpu_pct"],
        "client_cpu_pct_at_last_step": last["client_cpu_pct"],
        "client_cpu_pct_per_visit": round(last["client_cpu_pct"] / max(1, last["visits"]), 1),
        "redis_commands_per_s_idle": steps[0]["redis_commands_per_s"],
        "redis_commands_per_s_per_visit": round(redis_per_visit, 2),
        "steps": steps,
    }


async def orchestrate(args: argparse.Namespace) -> None:
    """Both cluster sizes, one after the other, in one run."""
    print(f"load average before: {load_average()} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
        work = Path(folder)
        media = work / "media.json"
        pre_encode(media)
        results = [await run_cluster(n, args, media, work) for n in args.nodes]
    for result in results:
        shown = {k: v for k, v in result.items() if k != "steps"}
        print(f"{result['nodes']} node(s): {json.dumps(shown)}")
    summary = {
        f"nodes_{r['nodes']}": {k: v for k, v in r.items() if k not in ("steps", "nodes")}
        for r in results
    }
    summary["load_average"] = load_average()
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "visits"])
    parser.add_argument("--nodes", default="1,2", help="cluster sizes to measure, in order")
    parser.add_argument("--max-visits", type=int, default=24)
    parser.add_argument("--step", type=int, default=2, help="visits added per step")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per step")
    parser.add_argument("--per-process", type=int, default=2, help="visits per client process")
    parser.add_argument("--media", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.role == "visits":
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt replies
        asyncio.run(serve_visits(args.media, replies))
    else:
        args.nodes = [int(n) for n in args.nodes.split(",")]
        asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
