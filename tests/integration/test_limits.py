"""Rate limits and quotas: a flooding client is cut off with ``rate_limited``, the others go on.

Every server here counts its shared limits in the real Redis, as a deployment of several
processes does; media flow between real aiortc peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import socketio
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from config.settings import Settings
from migrations.runner import upgrade
from rooms.identity import Role
from signaling.auth import issuer_from_settings
from tests.conftest import clean_environ, free_tcp_port
from tests.integration.live import (
    LiveServer,
    SignalingClient,
    admitted_visit,
    connect,
    participant_id,
    serving,
    visit_body,
)
from tests.integration.media_client import MediaClient

pytestmark = pytest.mark.redis

Connect = Callable[..., Any]
#: A trickled candidate the server drops (an mDNS name): counted, never tried.
MDNS_CANDIDATE = "candidate:1 1 udp 2113937151 4f1c7b2e.local 50000 typ host"


@pytest.fixture
async def make_server(
    sqlite_url: str, redis_url: str, settings_factory: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Any]]:
    """Start servers on one database and the test's Redis; ``make_server(**settings)``."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> LiveServer:
            values = {"database_url": sqlite_url, "redis_url": redis_url, **overrides}
            return await stack.enter_async_context(serving(settings_factory(**values)))

        yield make


async def media_of(*signaling: SignalingClient) -> list[MediaClient]:
    """Each participant publishes a camera and a microphone, and receives the others'."""
    media = [MediaClient(client) for client in signaling]
    for client in media:
        await client.publish()
    return media


async def chat_until(client: SignalingClient, text: str) -> list[str]:
    """The chat messages a client receives until ``text``, that one left out."""
    seen = []
    while (message := await client.next("chat_message"))["text"] != text:
        seen.append(message["text"])
    return seen


async def test_a_chat_flood_is_cut_off_and_the_others_chat_and_see_on(
    make_server: Callable[..., Any], clients: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server()
    consult, doctor, patient = await admitted_visit(server, clients)
    doctor_id, patient_id = participant_id(consult, "dr-wang"), participant_id(consult, "pt-li")
    media = await media_of(doctor, patient)
    try:
        await media[0].wait_for(patient_id, "video", 10, timeout=30)

        # The flood arrives at once, as a script sends it: the server counts on arrival.
        acks = await asyncio.gather(
            *(patient.call("chat", {"text": f"spam {n}"}) for n in range(60))
        )
        refused = [ack for ack in acks if not ack["ok"]]
        assert len(refused) >= 30, "a flood of 60 messages is not cut off"
        assert {ack["error"]["code"] for ack in refused} == {"rate_limited"}
        assert all(1 <= ack["error"]["retry_after"] <= 60 for ack in refused)
        reached = [r for r in caplog.records if getattr(r, "limit", None) == "chat"]
        assert 1 <= len(reached) < len(refused), "a flood is logged once, not per message"

        assert (await doctor.call("chat", {"text": "Blood pressure today?"}))["ok"]
        spam_seen = await chat_until(patient, "Blood pressure today?")
        assert len(spam_seen) == 60 - len(refused), "refused messages reached the others"

        before = media[0].received[(patient_id, "video")], media[1].received[(doctor_id, "video")]
        await media[0].wait_for(patient_id, "video", before[0] + 10, timeout=30)
        await media[1].wait_for(doctor_id, "video", before[1] + 10, timeout=30)

        await asyncio.sleep(refused[-1]["error"]["retry_after"])
        assert (await patient.call("chat", {"text": "140 over 90"}))["ok"]
    finally:
        for client in media:
            await client.close()


async def test_an_ice_candidate_flood_is_cut_off_and_the_media_go_on(
    make_server: Callable[..., Any], clients: Connect
) -> None:
    server = await make_server()
    consult, doctor, patient = await admitted_visit(server, clients)
    doctor_id, patient_id = participant_id(consult, "dr-wang"), participant_id(consult, "pt-li")
    media = await media_of(doctor, patient)
    try:
        candidate = {"pc": "publisher", "candidate": MDNS_CANDIDATE, "sdpMid": "0"}
        acks = await asyncio.gather(*(patient.call("ice_candidate", candidate) for _ in range(150)))
        assert {"ok": True, "accepted": False} in acks
        refused = [ack for ack in acks if not ack["ok"]]
        assert len(refused) >= 40
        assert {ack["error"]["code"] for ack in refused} == {"rate_limited"}

        before = media[0].received[(patient_id, "audio")], media[1].received[(doctor_id, "audio")]
        await media[0].wait_for(patient_id, "audio", before[0] + 20, timeout=30)
        await media[1].wait_for(doctor_id, "audio", before[1] + 20, timeout=30)
        assert (await doctor.call("chat", {"text": "Can you hear me?"}))["ok"]
        assert (await patient.call("chat", {"text": "Yes"}))["ok"]
    finally:
        for client in media:
            await client.close()


@pytest.mark.postgres
async def test_two_server_processes_on_one_redis_share_an_identitys_counts(
    postgres_url: str,
    redis_url: str,
    settings_factory: Callable[..., Settings],
    clients: Connect,
    tmp_path: Path,
) -> None:
    await asyncio.to_thread(upgrade, postgres_url)
    settings = settings_factory(
        database_url=postgres_url,
        redis_url=redis_url,
        rate_limit_scheduling="3/minute",
        rate_limit_events="10/minute",
        max_sockets_per_identity=2,
    )
    async with (
        serve_process(settings, tmp_path / "first") as first,
        serve_process(settings, tmp_path / "second") as second,
    ):
        await first.schedule_visit()
        await second.schedule_visit()
        await first.schedule_visit()
        refused = await try_to_schedule(second, second.token("coord-1", Role.COORDINATOR))
        assert refused["status"] == 429, "the other process did not count coord-1's consults"
        assert refused["body"]["error"]["code"] == "rate_limited"
        other = await try_to_schedule(second, second.token("coord-2", Role.COORDINATOR))
        assert other["status"] == 201, "another scheduler is not limited by coord-1's count"

        token = first.token("dr-wang", Role.DOCTOR)
        on_first, on_second = await clients(first.url, token), await clients(second.url, token)
        codes = [(await on_first.call("leave", {}))["error"]["code"] for _ in range(6)]
        codes += [(await on_second.call("leave", {}))["error"]["code"] for _ in range(5)]
        assert codes == ["not_joined"] * 10 + ["rate_limited"]
        assert (await on_first.call("leave", {}))["error"]["code"] == "rate_limited"

        assert await refusal(first, token) == "too_many_sockets", "sockets counted per process"
        await on_second.close()
        again = await eventually_connect(first.url, token)
        for client in (on_first, again):  # before the servers stop: they wait for sockets
            await client.close()


async def eventually_connect(url: str, token: str) -> SignalingClient:
    """Connect once the server noticed that a socket of the identity closed (a moment later)."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await connect(url, token)
            except socketio.exceptions.ConnectionError:
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def serve_process(settings: Settings, data_dir: Path) -> AsyncIterator[LiveServer]:
    """``teleconsult serve`` in a process of its own, with ``settings`` and its own data folder
    (logs next to it); a client of it."""
    port = free_tcp_port()
    env = {
        **clean_environ(),
        **{f"TELECONSULT_{k.upper()}": str(v) for k, v in settings_env(settings).items()},
        "TELECONSULT_DATA_DIR": str(data_dir),
        "TELECONSULT_PORT": str(port),
    }
    with data_dir.with_suffix(".log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "teleconsult"),
            "serve",
            env=env,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with ClientSession() as http:
                await until_healthy(http, url, process)
                issuer = issuer_from_settings(settings)
                assert issuer is not None
                yield LiveServer(url, settings, issuer, http)
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 30)


def settings_env(settings: Settings) -> dict[str, Any]:
    """The settings a test chose that a server process must share (database, Redis, key, limits)."""
    names = (
        "database_url",
        "redis_url",
        "jwt_secret",
        "rate_limit_scheduling",
        "rate_limit_events",
        "max_sockets_per_identity",
    )
    return {name: getattr(settings, name) for name in names} | {"media_addresses": "127.0.0.1"}


async def until_healthy(http: ClientSession, url: str, process: asyncio.subprocess.Process) -> None:
    """Wait until a started server answers ``/healthz`` (it stops the test if the server exits)."""
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, "teleconsult serve exited while starting"
            with contextlib.suppress(OSError):
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def try_to_schedule(server: LiveServer, token: str) -> dict[str, Any]:
    """POST a visit; its status, ``Retry-After`` header and JSON body."""
    body = {
        "kind": "visit",
        "hospital": "h-east",
        "title": "Follow-up",
        "scheduled_at": "2030-01-01T09:00:00+00:00",
        "host": {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"},
        "participants": [{"sub": "pt-li", "name": "Li Hua", "role": "patient"}],
    }
    async with server.http.post(
        f"{server.url}/api/consults", json=body, headers=server.headers(token)
    ) as response:
        return {
            "status": response.status,
            "retry_after": response.headers.get("Retry-After"),
            "body": await response.json(),
        }


async def test_rest_writes_beyond_the_limit_get_429_with_retry_after(
    make_server: Callable[..., Any],
) -> None:
    server = await make_server(
        rate_limit_rest_writes="2/minute", rate_limit_rest_writes_per_address="5/minute"
    )
    coordinator = server.token("coord-1", Role.COORDINATOR)
    answers = [await try_to_schedule(server, coordinator) for _ in range(3)]
    assert [a["status"] for a in answers] == [201, 201, 429]
    refused = answers[-1]
    assert refused["body"]["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["retry_after"]) <= 60
    assert refused["body"]["error"]["retry_after"] == int(refused["retry_after"])

    # Per address: three more schedulers from the same address reach its five writes.
    others = [server.token(f"coord-{n}", Role.COORDINATOR) for n in (2, 3, 4)]
    answers = [await try_to_schedule(server, token) for token in others]
    assert [a["status"] for a in answers] == [201, 201, 429]
    async with server.http.get(
        f"{server.url}/api/consults/nope", headers=server.headers(others[0])
    ) as response:
        assert response.status == 404, "reads are not writes"


async def test_limits_hold_in_the_process_when_redis_is_down(
    sqlite_url: str, settings_factory: Callable[..., Settings]
) -> None:
    await asyncio.to_thread(upgrade, sqlite_url)
    nobody = f"redis://127.0.0.1:{free_tcp_port()}/0"
    settings = settings_factory(
        database_url=sqlite_url, redis_url=nobody, rate_limit_scheduling="2/minute"
    )
    async with serving(settings) as server:
        coordinator = server.token("coord-1", Role.COORDINATOR)
        answers = [await try_to_schedule(server, coordinator) for _ in range(3)]
        assert [a["status"] for a in answers] == [201, 201, 429]
        assert answers[-1]["body"]["error"]["code"] == "rate_limited"
        assert await fallbacks(server) >= 1, "the outage is not counted"


async def test_limits_hold_in_the_process_while_redis_hangs(
    private_redis: str,
    sqlite_url: str,
    settings_factory: Callable[..., Settings],
    clients: Connect,
) -> None:
    await asyncio.to_thread(upgrade, sqlite_url)
    settings = settings_factory(
        database_url=sqlite_url, redis_url=private_redis, rate_limit_scheduling="2/minute"
    )
    async with serving(settings) as server:
        coordinator = server.token("coord-1", Role.COORDINATOR)
        assert (await try_to_schedule(server, coordinator))["status"] == 201
        before = await fallbacks(server)
        admin = aioredis.from_url(private_redis)
        await admin.execute_command("CLIENT", "PAUSE", "10000", "ALL")
        await admin.aclose()
        answers = [await try_to_schedule(server, coordinator) for _ in range(3)]
        # Counted afresh in the process while Redis does not answer: never a 500.
        assert [a["status"] for a in answers] == [201, 201, 429]
        assert answers[-1]["body"]["error"]["code"] == "rate_limited"
        assert await fallbacks(server) > before, "the outage is not counted"
        doctor = await clients(server.url, server.token("dr-wang", Role.DOCTOR))
        assert (await doctor.call("leave", {}))["error"]["code"] == "not_joined"
        await doctor.close()


async def fallbacks(server: LiveServer) -> float:
    """How often the server's limiter fell back from Redis to its own counters (``/metrics``)."""
    async with server.http.get(f"{server.url}/metrics") as response:
        metrics = (await response.text()).splitlines()
    line = next(m for m in metrics if m.startswith("teleconsult_limiter_fallbacks_total"))
    return float(line.split()[-1])


async def test_a_second_camera_is_refused_and_the_first_publishes(
    make_server: Callable[..., Any], clients: Connect
) -> None:
    server = await make_server()
    _, _, patient = await admitted_visit(server, clients)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        sources = {"0": "camera", "1": "camera", "2": "microphone"}
        ack = await patient.call("publish", {"type": "offer", "sdp": sdp, "sources": sources})
        assert ack["error"]["code"] == "too_many_tracks"
        sources = {"0": "camera", "1": "screen", "2": "microphone"}
        ack = await patient.call("publish", {"type": "offer", "sdp": sdp, "sources": sources})
        assert ack["ok"], "a camera and a screen share are one of each"
    finally:
        await pc.close()


async def test_an_oversized_sdp_is_refused(
    make_server: Callable[..., Any], clients: Connect
) -> None:
    server = await make_server()
    _, _, patient = await admitted_visit(server, clients)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        padded = sdp + "a=x-padding:" + "0" * 70_000 + "\r\n"
        ack = await patient.call("publish", {"type": "offer", "sdp": padded})
        assert ack["error"]["code"] == "sdp_too_large"
        ack = await patient.call("subscriber_answer", {"type": "answer", "sdp": padded})
        assert ack["error"]["code"] == "sdp_too_large"
        assert (await patient.call("publish", {"type": "offer", "sdp": sdp}))["ok"]
    finally:
        await pc.close()


async def test_an_identity_holds_a_bounded_number_of_sockets(
    make_server: Callable[..., Any], clients: Connect
) -> None:
    server = await make_server(max_sockets_per_identity=2)
    token = server.token("dr-wang", Role.DOCTOR)
    first = await clients(server.url, token)
    await clients(server.url, token)
    assert await refusal(server, token) == "too_many_sockets"
    await clients(server.url, server.token("dr-chen", Role.DOCTOR))
    await first.close()
    again = await eventually_connect(server.url, token)
    await again.close()


async def refusal(server: LiveServer, token: str) -> str:
    """The code a refused Socket.IO connection gets."""
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            server.url, auth={"token": token}, transports=["websocket"], wait_timeout=10
        )
    return refusals[0]["data"]["code"]


async def test_connections_beyond_the_connect_rate_are_refused(
    make_server: Callable[..., Any], clients: Connect
) -> None:
    server = await make_server(rate_limit_connects="3/minute")
    token = server.token("dr-wang", Role.DOCTOR)
    for _ in range(3):
        await (await clients(server.url, token)).close()
    assert await refusal(server, token) == "rate_limited"


async def test_a_consult_has_a_bounded_number_of_participants(
    make_server: Callable[..., Any],
) -> None:
    server = await make_server(max_participants_per_consult=3)
    coordinator = server.token("coord-1", Role.COORDINATOR)
    invitees = [{"sub": f"pt-{n}", "name": f"Patient {n}", "role": "patient"} for n in range(3)]
    body = visit_body(title="Group session", participants=invitees)
    async with server.http.post(
        f"{server.url}/api/consults", json=body, headers=server.headers(coordinator)
    ) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "too_many_participants"
    body["participants"] = invitees[:2]
    async with server.http.post(
        f"{server.url}/api/consults", json=body, headers=server.headers(coordinator)
    ) as response:
        assert response.status == 201
