"""
Benchmark: server CPU of recording, against the same forwarding SFU without recording.

One server process (our ``media.MediaServer``, one consult) and one publisher process per
published participant, on loopback: each publisher sends pre-encoded 640x480 30 fps VP8 at
about 1 Mbit/s plus Opus (packets encoded once with PyAV, see bench/sfu.py). The server's
CPU (utime+stime from /proc/<pid>/stat) is measured over alternating windows without and
with the recorder running, in the same run; the overhead is the difference, per recorded
track-second, and as percent of one core per 1 Mbit/s video track (its audio track included).

Run: ``.venv/bin/python bench/recording.py`` (about a minute). The last line printed is one
JSON object.
"""

# The load generator polls outside every measured window:

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sfu import Child, cpu_seconds, pre_encode, run_publisher
from media import MediaConfig, MediaServer
from media.recording import Manifest

SETTLE, WINDOW, ROUNDS = 2.0, 8.0, 3


async def run_server(folder: Path) -> None:
    """The server process: one consult; HTTP to publish and to start/stop recording."""
    media = MediaServer(MediaConfig(addresses=["127.0.0.1"], ice_servers=[]))
    room = media.room("bench")
    count = 0

    async def ignore(event: str, payload: dict[str, Any]) -> None:
        return None

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        participant = await room.join(body["participant"], ignore)
        return web.json_response({"sdp": await participant.handle_publisher_offer(body["sdp"])})

    async def start(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        recording = f"rec-{count}"
        room.start_recording(folder / recording, Manifest(recording, {"id": "bench"}))
        return web.json_response({})

    async def stop(request: web.Request) -> web.Response:
        manifest = await room.stop_recording()
        assert manifest is not None
        return web.json_response(manifest.as_dict())

    app = web.Application()
    app.router.add_post("/publish", publish)
    app.router.add_post("/start", start)
    app.router.add_post("/stop", stop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await media.shutdown()


async def window(pid: int) -> float:
    """Percent of one core the process used over one measured window."""
    await asyncio.sleep(SETTLE)
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(WINDOW)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


async def orchestrate(publishers: int) -> None:
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        media_file = work / "media.json"
        pre_encode(media_file)
        server = await Child.start("server", "--folder", str(work / "recordings"), script=__file__)
        url = f"http://127.0.0.1:{await server.expect('READY')}"
        clients = []
        for index in range(publishers):
            client = await Child.start(
                "publisher",
                *("--url", url, "--media", str(media_file), "--name", f"p{index}"),
                script=__file__,
            )
            await client.expect("READY")
            clients.append(client)
        pid = server.process.pid
        without: list[float] = []
        with_recording: list[float] = []
        recorded_seconds = 0.0
        tracks = 0
        bitrate = 0.0
        async with ClientSession() as http:
            for _ in range(ROUNDS):
                without.append(await window(pid))
                await http.post(f"{url}/start")
                with_recording.append(await window(pid))
                manifest = await (await http.post(f"{url}/stop")).json()
                videos = [t for t in manifest["tracks"] if t["kind"] == "video"]
                tracks = len(videos)
                recorded_seconds += sum(t["duration"] for t in videos)
                bitrate = statistics.fmean(8 * t["bytes"] / t["duration"] for t in videos)
            without.append(await window(pid))
        for client in clients:
            await client.stop()
        await server.stop()

    base, recording = statistics.fmean(without), statistics.fmean(with_recording)
    overhead = recording - base
    per_video_track = overhead / tracks
    per_mbps = per_video_track / (bitrate / 1e6)
    print(f"server CPU without recording: {[round(x, 2) for x in without]} % of a core")
    print(f"server CPU while recording:   {[round(x, 2) for x in with_recording]} % of a core")
    print(f"{tracks} video + {tracks} audio tracks recorded, video {bitrate / 1e6:.2f} Mbit/s")
    print(
        f"recording overhead: {overhead:.2f} % of a core in all, {per_video_track:.2f} % per video"
        f" track (with its audio), {per_mbps:.2f} % per 1 Mbit/s; target <= 2 %"
    )
    print(
        json.dumps(
            {
                "publishers": publishers,
                "cpu_pct_without_recording": round(base, 2),
                "cpu_pct_with_recording": round(recording, 2),
                "overhead_pct_per_video_track": round(per_video_track, 2),
                "overhead_pct_per_mbps_video_track": round(per_mbps, 2),
                "cpu_seconds_per_recorded_track_second": round(per_video_track / 100, 5),
                "video_mbps": round(bitrate / 1e6, 2),
                "recorded_video_seconds": round(recorded_seconds, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "role", nargs="?", default="orchestrate", choices=["orchestrate", "server", "publisher"]
    )
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--folder")
    parser.add_argument("--url")
    parser.add_argument("--media")
    parser.add_argument("--name")
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(run_server(Path(args.folder)))
    elif args.role == "publisher":
        asyncio.run(run_publisher(args.url, Path(args.media), name=args.name))
    else:
        asyncio.run(orchestrate(args.publishers))


if __name__ == "__main__":
    main()
