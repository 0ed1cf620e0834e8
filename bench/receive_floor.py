"""
Benchmark: the least a Python event loop pays to receive a publisher's datagrams, doing nothing.

A receiver process opens one UDP socket per publisher on 127.0.0.1 and counts what arrives
(``datagram_received`` does nothing else); a sender process sends each socket what
``bench/sfu.py``'s publisher sends: a 30 fps video frame as a burst of 4 packets of 1,100 bytes
(about 1 Mbit/s) and a 160-byte Opus packet every 20 ms, 170 datagrams a second. Receiver CPU
(its CPU-time clock) over a window, per publisher and per datagram, on uvloop (what
``teleconsult serve`` runs) and on asyncio's own loop, alternating fresh receivers in one run.
What the packet inlet (``bench/sfu.py --arms receive``) costs above this is its own work.

Run: ``.venv/bin/python bench/receive_floor.py`` (about a minute). The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sfu import FPS, Child, cpu_seconds

LOOPS = ("uvloop", "asyncio")
ROUNDS = 3
SETTLE, WINDOW = 2.0, 8.0
VIDEO_PACKETS, VIDEO_SIZE = 4, 1100
AUDIO_INTERVAL, AUDIO_SIZE = 0.02, 160
DATAGRAMS_PER_SECOND = FPS * VIDEO_PACKETS + round(1 / AUDIO_INTERVAL)


class Counter(asyncio.DatagramProtocol):
    """Counts datagrams and does nothing else with them."""

    received = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        Counter.received += 1


async def receive(publishers: int) -> None:
    """The receiver process: one socket per publisher; prints their ports, then counts."""
    loop = asyncio.get_running_loop()
    ports = []
    for _ in range(publishers):
        transport, _ = await loop.create_datagram_endpoint(Counter, local_addr=("127.0.0.1", 0))
        ports.append(str(transport.get_extra_info("sockname")[1]))
    print("READY", " ".join(ports), flush=True)
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "count":
        print("RECEIVED", Counter.received, flush=True)


def send(ports: list[int]) -> None:
    """The sender process: each socket a publisher's video bursts and audio, until killed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    video, audio = os.urandom(VIDEO_SIZE), os.urandom(AUDIO_SIZE)
    print("SENDING", flush=True)
    start = time.monotonic()
    next_video = next_audio = start
    while True:
        now = time.monotonic()
        if now >= next_video:
            for port in ports:
                for _ in range(VIDEO_PACKETS):
                    sock.sendto(video, ("127.0.0.1", port))
            next_video += 1 / FPS
        if now >= next_audio:
            for port in ports:
                sock.sendto(audio, ("127.0.0.1", port))
            next_audio += AUDIO_INTERVAL
        time.sleep(max(0.0, min(next_video, next_audio) - time.monotonic()))


async def measure(loop: str, publishers: int) -> tuple[float, float]:
    """CPU (% of a core) of one fresh receiver on `loop`, and the datagrams it received a
    second, over one window."""
    receiver = await Child.start(
        "receive", "--loop", loop, "--publishers", str(publishers), script=__file__
    )
    ports = (await receiver.expect("READY")).split()
    sender = await Child.start("send", *ports, script=__file__)
    await sender.expect("SENDING")
    await asyncio.sleep(SETTLE)
    pid = receiver.process.pid
    await receiver.say("count")
    received = int(await receiver.expect("RECEIVED"))
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(WINDOW)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    await receiver.say("count")
    rate = (int(await receiver.expect("RECEIVED")) - received) / (t1 - t0)
    sender.process.kill()
    await sender.process.wait()
    await receiver.say("stop")
    await receiver.process.wait()
    return (cpu1 - cpu0) / (t1 - t0) * 100, rate


def load_average() -> str:
    """The load average over 1, 5 and 15 minutes."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def orchestrate(publishers: int) -> None:
    print(f"load average before: {load_average()} on {os.cpu_count()} cores")
    cpu: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    each: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    for _ in range(ROUNDS):
        for loop in LOOPS:
            pct, rate = await measure(loop, publishers)
            cpu[loop].append(pct / publishers)
            each[loop].append(pct / 100 / rate * 1e6)
            print(
                f"  {loop}: {pct / publishers:5.3f} % of a core per publisher, "
                f"{rate:.0f} datagrams/s, {each[loop][-1]:.1f} us each"
            )
    median = {loop: round(statistics.median(v), 3) for loop, v in cpu.items()}
    per_datagram = {loop: round(statistics.median(v), 1) for loop, v in each.items()}
    summary = {
        "publishers": publishers,
        "datagrams_per_second_per_publisher": DATAGRAMS_PER_SECOND,
        "cpu_pct_per_publisher": median,
        "us_per_datagram": per_datagram,
        "windows": {loop: [round(v, 3) for v in values] for loop, values in cpu.items()},
        "load_average": load_average(),
    }
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="*", default=["bench"])
    parser.add_argument("--loop", choices=LOOPS, default="uvloop")
    parser.add_argument("--publishers", type=int, default=2)
    args = parser.parse_args()
    role = args.role[0]
    if role == "receive":
        run = uvloop.run if args.loop == "uvloop" else asyncio.run
        run(receive(args.publishers))
    elif role == "send":
        send([int(port) for port in args.role[1:]])
    else:
        asyncio.run(orchestrate(args.publishers))


if __name__ == "__main__":
    main()
