"""
Benchmark: how soon a visit's video is back after the patient's network returns (issue 9).

Runs the WebRTC network-loss test (tests/webrtc/test_reconnect_e2e.py) N times, each in a fresh
loopback-only namespace (scripts/in-netns.sh): real ``teleconsult serve``, the doctor's Chromium on
loopback, the patient's Chromium in a network namespace of its own whose packets are all dropped
for 8 s while a recording runs. The test appends, per run, the seconds from the network's return
to the first new remote frame on each page (``requestVideoFrameCallback`` of the remote camera);
this script collects them and prints the median and worst of each side and of both ways (the
later of the two: when video flows both ways again).

Run as root (namespaces): ``.venv/bin/python bench/reconnect.py`` (10 runs, about 12 minutes);
``--runs N`` for another count. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/webrtc/test_reconnect_e2e.py"


def run_once(times: Path) -> bool:
    """One run of the network-loss test; True when it passed."""
    command = [
        "scripts/in-netns.sh",
        ".venv/bin/pytest",
        "-q",
        "-m",
        "webrtc",
        "-p",
        "no:cacheprovider",
        TEST,
        "-k",
        "network_lost",
    ]
    env = {**os.environ, "TELECONSULT_RECONNECT_TIMES": str(times)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-2000:])
    return result.returncode == 0


def summary(values: list[float]) -> dict[str, float]:
    """Median and worst, in seconds."""
    return {"median": round(statistics.median(values), 2), "worst": round(max(values), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        times = Path(folder) / "times.jsonl"
        failed = 0
        for run in range(1, args.runs + 1):
            passed = run_once(times)
            failed += not passed
            print(f"run {run}/{args.runs}: {'passed' if passed else 'FAILED'}", flush=True)
        lines = times.read_text().splitlines() if times.exists() else []
        rows = [json.loads(line) for line in lines]
    if not rows:
        print("no run measured anything", file=sys.stderr)
        return 1
    doctor = [row["doctor"] for row in rows]
    patient = [row["patient"] for row in rows]
    both = [max(row["doctor"], row["patient"]) for row in rows]
    result = {
        "runs": len(rows),
        "failed": failed,
        "doctor_sees_patient_s": summary(doctor),
        "patient_sees_doctor_s": summary(patient),
        "both_ways_s": summary(both),
        "load_average": os.getloadavg()[0],
    }
    for name in ("doctor_sees_patient_s", "patient_sees_doctor_s", "both_ways_s"):
        print(f"{name}: median {result[name]['median']} s, worst {result[name]['worst']} s")
    print(json.dumps(result))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
