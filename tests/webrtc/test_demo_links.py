"""`teleconsult serve` on embedded defaults, and the links `teleconsult demo` prints connect.

The server starts from a fresh data dir with no database or Redis configured (SQLite in the data
dir, in-process pub/sub); `teleconsult demo` run against the same data dir and environment
prints a doctor's and a patient's link, and both open in Chromium into a working visit.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    NewContext,
    admit_from_lobby,
    expect_loopback_pairs,
    expect_playing,
    join,
    open_link,
    print_first_frame_times,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(90)]

# "  doctor   Dr. Wang Fang: http://127.0.0.1:PORT/join/<id>?token=..."
DEMO_LINK = re.compile(r"^\s+(?P<role>\w+)\s+(?P<name>[^:]+): (?P<url>http\S+)$", re.MULTILINE)
EXTERNAL_SERVICES = ("TELECONSULT_DATABASE_URL", "TELECONSULT_REDIS_URL")


def run_demo(server: TeleconsultServer) -> dict[str, tuple[str, str]]:
    """Run ``teleconsult demo`` on the server's data dir; its links, by role: (name, url).

    The links are built from TELECONSULT_HOST/PORT, which ``serve`` got as command-line flags.

    :param server: The running server whose data dir and settings the demo shares.
    """
    env = dict(server.env, TELECONSULT_HOST=server.host, TELECONSULT_PORT=str(server.port))
    executable = Path(sys.executable).parent / "teleconsult"
    result = subprocess.run(
        [str(executable), "demo"],
        env=env,
        cwd=server.data_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    links = {m["role"]: (m["name"], m["url"]) for m in DEMO_LINK.finditer(result.stdout)}
    assert set(links) == {"doctor", "patient"}, result.stdout
    return links


async def test_serve_on_embedded_defaults_and_demo_links_connect(
    server: TeleconsultServer, new_context: NewContext
) -> None:
    """A fresh data dir, no database or Redis: the demo's two links make a working visit."""
    for name in EXTERNAL_SERVICES:
        assert name not in server.env, f"the server fixture configures {name}"
    assert (server.data_dir / "teleconsult.db").is_file()
    assert '"database": "sqlite+aiosqlite"' in server.log_path.read_text()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.base_url}/readyz") as response,
    ):
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok"}

    links = await asyncio.to_thread(run_demo, server)
    (doctor_name, doctor_url), (patient_name, patient_url) = links["doctor"], links["patient"]
    assert (doctor_name, patient_name) == ("Dr. Wang Fang", "Li Hua")
    for url in (doctor_url, patient_url):
        assert urlsplit(url).netloc == f"{server.host}:{server.port}", url

    doctor = await open_link(new_context, doctor_url)
    await join(doctor)
    await expect(doctor.locator("body")).to_have_attribute("data-view", "consult")
    patient = await open_link(new_context, patient_url)
    await join(patient)
    admitted_at = await admit_from_lobby(doctor, patient, patient_name)

    doctor_state, patient_state = [
        await page.evaluate("window.teleconsult.state") for page in (doctor, patient)
    ]
    await asyncio.gather(
        expect_playing(patient, doctor_state["participant"]["participant_id"]),
        expect_playing(doctor, patient_state["participant"]["participant_id"]),
    )
    await print_first_frame_times("demo", doctor, patient, admitted_at)
    for page in (doctor, patient):
        await expect_loopback_pairs(page)
