"""A visit relayed through a real coturn: a hospital whose record says "relay only" and names its
TURN server; the browsers get short-lived credentials in their join answers, send and receive
video through coturn only, and coturn refuses credentials past their expiry.

coturn (Debian's ``turnserver``) runs on loopback with ``use-auth-secret``: it checks the TURN
REST API credentials our server makes from the same ``static-auth-secret``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from rooms.turn import turn_credentials
from tests.conftest import free_tcp_port
from tests.log_scan import register_secret
from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    HOSPITAL,
    SELECTED_PAIR,
    NewContext,
    schedule_visit,
    visit_in_progress,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Coturn:
    """A running coturn: where it listens, the secret it checks credentials with, its log."""

    port: int
    secret: str
    log: Path

    @property
    def url(self) -> str:
        """Its TURN URL (UDP)."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def _stun_binding_answers(port: int) -> bool:
    """True when a STUN Binding request to 127.0.0.1:port gets a success answer."""
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + secrets.token_bytes(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(request, ("127.0.0.1", port))
        try:
            answer, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return answer[:2] == b"\x01\x01" and answer[8:20] == request[8:20]


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn on loopback with use-auth-secret, its relay ports on loopback too."""
    port = free_tcp_port()
    secret = secrets.token_urlsafe(24)
    register_secret(secret)
    log = tmp_path / "turnserver.log"
    relay_low = 40000 + (os.getpid() % 200) * 100
    command = [
        "turnserver",
        "-n",  # no configuration file: everything is on this line
        f"--listening-port={port}",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--min-port={relay_low}",
        f"--max-port={relay_low + 99}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        "--realm=teleconsult.test",
        "--allow-loopback-peers",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-tcp-relay",
        "--log-file=stdout",
        "--simple-log",
    ]
    with log.open("w") as output:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 15
        while not await asyncio.to_thread(_stun_binding_answers, port):
            assert process.returncode is None, f"turnserver exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "turnserver did not answer STUN within 15 s"
            await asyncio.sleep(0.1)
        yield Coturn(port, secret, log)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()


async def relay_candidates(coturn: Coturn, username: str, credential: str) -> list[str]:
    """The relay candidates an aiortc peer gathers from coturn with these credentials."""
    server = RTCIceServer(urls=coturn.url, username=username, credential=credential)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[server]))
    try:
        pc.createDataChannel("probe")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    return [line for line in sdp.splitlines() if "typ relay" in line]


async def test_turn_credentials_are_refused_by_coturn_once_expired(coturn: Coturn) -> None:
    valid = turn_credentials(coturn.secret, "participant-1", int(time.time()) + 600)
    expired = turn_credentials(coturn.secret, "participant-1", int(time.time()) - 60)
    forged = turn_credentials("not-the-secret", "participant-1", int(time.time()) + 600)
    assert await relay_candidates(coturn, valid.username, valid.credential), (
        "valid credentials got no relay candidate"
    )
    assert not await relay_candidates(coturn, expired.username, expired.credential)
    assert not await relay_candidates(coturn, forged.username, forged.credential)


async def test_a_relay_only_hospital_has_its_visit_relayed_through_coturn(
    server: TeleconsultServer, new_context: NewContext, coturn: Coturn
) -> None:
    admin = await asyncio.to_thread(server.token, "admin-1", "admin", HOSPITAL)
    record = {
        "display_names": {"zh-CN": "华东医院", "en": "Huadong Hospital"},
        "ice": {"turn_urls": [coturn.url], "turn_secret": coturn.secret, "relay_only": True},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{server.base_url}/api/hospitals/{HOSPITAL}",
            json=record,
            headers={"Authorization": f"Bearer {admin}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)

    doctor, patient, _ = await visit_in_progress(new_context, consult)

    for who, page in (("doctor", doctor), ("patient", patient)):
        for which in ("publisherPc", "subscriberPc"):
            pair = await page.evaluate(SELECTED_PAIR, which)
            assert pair is not None, f"{who} {which}: no selected candidate pair"
            assert pair["state"] == "succeeded", f"{who} {which}: {pair}"
            assert pair["localType"] == "relay", f"{who} {which} did not relay: {pair}"
