"""The web page in a cluster (issue 11), in real Chromium: three nodes as processes sharing
PostgreSQL, a private Redis and the recordings' folder. The consult's media is on node B; the
patient's page is loaded from node C and its signaling is sent on to B, in the page; the doctor
(an aiortc client) comes back through A. When B is killed the page goes back to C, which places
the consult again and sends it on, and the page has video again within the issue's 15 s; the
recording B left is recovered; ending the consult from C stops everything.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from media.aiortc_hooks import use_host_addresses
from migrations.runner import upgrade
from tests.conftest import free_tcp_port
from tests.integration.cluster_client import ClusterParticipant
from tests.integration.test_cluster import RECOVERY_BOUND_SECONDS
from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.visit_flow import (
    DOCTOR_NAME,
    DOCTOR_SUB,
    HOSPITAL,
    PATIENT_SUB,
    RECONNECT_PROBE,
    NewContext,
    expect_loopback_pairs,
    expect_playing,
    first_frame_after,
    inbound_total,
    join,
    participant,
    schedule_visit,
)

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(300)]

#: Hang guards of steps whose speed is not what this test asserts (the machine is shared).
STEP_TIMEOUT_S = 60.0
#: Short heartbeats, as test_cluster's CLUSTER_TIMING, with more slack before a node is dead:
#: three nodes, Chromium and the doctor on this shared machine once stalled B for 2 s, and C
#: placed the consult elsewhere before the kill. The issue's 15 s still holds (death at 4 s).
PAGE_CLUSTER_TIMING = {"node_heartbeat_seconds": 0.3, "node_dead_after_seconds": 4.0}


@pytest.fixture
async def aiortc_on_loopback() -> AsyncIterator[None]:
    """The doctor's aiortc peers in this process gather their candidates on 127.0.0.1 (aioice
    skips loopback by itself, and loopback is all this namespace has)."""
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses([])


def three_nodes_env(
    postgres_url: str,
    redis_url: str,
    shared: Path,
    ports: dict[str, int],
    timing: dict[str, float],
) -> dict[str, str]:
    """The environment every node of the test's cluster shares: the database, Redis, the data
    and recordings' folder (``shared``, made here), the keys, each other's origins, ``timing``."""
    shared.mkdir()
    return {
        "TELECONSULT_DATABASE_URL": postgres_url,
        "TELECONSULT_REDIS_URL": redis_url,
        "TELECONSULT_DATA_DIR": str(shared),
        "TELECONSULT_JWT_SECRET": secrets.token_urlsafe(32),
        "TELECONSULT_CLUSTER_ORIGINS": ",".join(f"http://127.0.0.1:{p}" for p in ports.values()),
        **{f"TELECONSULT_{name.upper()}": str(value) for name, value in timing.items()},
    }


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)


async def page_state(page: Page) -> dict[str, Any]:
    """The page's session state and the node its signaling talks to now (None: no socket)."""
    return dict(
        await page.evaluate(
            "() => ({...window.teleconsult.state, node: window.teleconsult.socket?.io?.uri ?? null,"
            " connected: window.teleconsult.socket?.connected ?? false})"
        )
    )


async def node_holds(node: TeleconsultServer) -> dict[str, Any]:
    """What a node's /readyz says it holds."""
    async with aiohttp.ClientSession() as http, http.get(f"{node.base_url}/readyz") as response:
        return dict((await response.json())["node"])


@dataclass
class ClusterVisit:
    """A visit across three nodes, as :func:`visit_across_three_nodes` set it up.

    :param nodes: the nodes by name (``a``, ``b``, ``c``).
    :param shared: their data and recordings' folder.
    :param consult: the REST answer to scheduling.
    :param doctor: the doctor, an aiortc client, publishing.
    :param doctor_token: the doctor's identity token.
    :param patient: the patient's page, in the consult.
    """

    nodes: dict[str, TeleconsultServer]
    shared: Path
    consult: dict[str, Any]
    doctor: ClusterParticipant
    doctor_token: str
    patient: Page

    @property
    def doctor_pid(self) -> str:
        return str(participant(self.consult, DOCTOR_SUB)["participant_id"])

    @property
    def patient_pid(self) -> str:
        return str(participant(self.consult, PATIENT_SUB)["participant_id"])


@asynccontextmanager
async def visit_across_three_nodes(
    postgres_url: str,
    redis_url: str,
    server_factory: Callable[..., Awaitable[TeleconsultServer]],
    new_context: NewContext,
    tmp_path: Path,
    timing: dict[str, float],
) -> AsyncIterator[ClusterVisit]:
    """Three nodes sharing PostgreSQL, Redis and a folder; the consult's media on B, where its
    first participant (the doctor) arrived; the patient's page loaded from C, its signaling sent
    on to B in the page; the doctor admitted the patient and each receives the other's video."""
    await asyncio.to_thread(upgrade, postgres_url)
    ports = {name: free_tcp_port() for name in ("a", "b", "c")}
    shared = tmp_path / "shared"  # data and recordings on "shared storage"
    cluster_env = three_nodes_env(postgres_url, redis_url, shared, ports, timing)

    # B alone at first: the consult's first participant arrives there and it is placed there.
    node_b = await server_factory(port=ports["b"], **cluster_env)
    coordinator = await asyncio.to_thread(node_b.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(node_b, coordinator)
    doctor_token = await asyncio.to_thread(
        node_b.token, DOCTOR_SUB, "doctor", HOSPITAL, DOCTOR_NAME
    )
    doctor = ClusterParticipant([node_b.base_url], doctor_token, consult["id"])
    try:
        assert (await doctor.join(node_b.base_url))["status"] == "joined"
        # Publishing now: B renews only the claims of consults whose media it holds, and a
        # claim lives 30 s (starting A and C may take that long on this machine).
        await doctor.publish()
        node_a = await server_factory(port=ports["a"], **cluster_env)
        node_c = await server_factory(port=ports["c"], **cluster_env)
        doctor.urls = [node_a.base_url, node_c.base_url]

        # The patient's link, opened at C (where a balancer sent the browser).
        context = await new_context()
        await context.add_init_script(script=RECONNECT_PROBE)
        patient = await context.new_page()
        link = participant(consult, PATIENT_SUB)["join_url"]
        await patient.goto(link.replace(node_b.base_url, node_c.base_url))
        await join(patient)
        await expect(patient.locator("body")).to_have_attribute("data-view", "lobby")
        state = await page_state(patient)
        assert state["node"] == node_b.base_url, "C sent the page's signaling on to B"
        assert patient.url.startswith(node_c.base_url), "in the page: no navigation"

        visit = ClusterVisit(
            {"a": node_a, "b": node_b, "c": node_c}, shared, consult, doctor, doctor_token, patient
        )
        admitted = await doctor.call("admit", {"participant_id": visit.patient_pid})
        assert admitted["ok"], admitted
        await expect(patient.locator("body")).to_have_attribute("data-view", "consult")
        await expect_playing(patient, visit.doctor_pid)
        await doctor.receives(visit.patient_pid, "video", 20, STEP_TIMEOUT_S)
        await expect_loopback_pairs(patient)
        holds = await node_holds(node_b)
        assert (holds["consults"], holds["publishers"]) == (1, 2)
        yield visit
    finally:
        await doctor.close()


#: Sets up a :class:`ClusterVisit` with these node timings.
VisitAcrossThreeNodes = Callable[[dict[str, float]], AbstractAsyncContextManager[ClusterVisit]]


@pytest.fixture
def cluster_visit(
    postgres_url: str,
    redis_url: str,
    server_factory: Callable[..., Awaitable[TeleconsultServer]],
    new_context: NewContext,
    tmp_path: Path,
    aiortc_on_loopback: None,
) -> VisitAcrossThreeNodes:
    """:func:`visit_across_three_nodes` with the test's fixtures (PostgreSQL and Redis are
    requested first: they outlive the nodes at teardown)."""
    return partial(
        visit_across_three_nodes, postgres_url, redis_url, server_factory, new_context, tmp_path
    )


async def test_the_patient_page_follows_its_consult_across_nodes_and_through_its_node_s_kill(
    cluster_visit: VisitAcrossThreeNodes,
) -> None:
    async with cluster_visit(PAGE_CLUSTER_TIMING) as visit:
        node_a, node_b, node_c = (visit.nodes[name] for name in ("a", "b", "c"))
        consult, doctor, patient, shared = visit.consult, visit.doctor, visit.patient, visit.shared
        doctor_pid, patient_pid, doctor_token = (
            visit.doctor_pid,
            visit.patient_pid,
            visit.doctor_token,
        )
        muted = await doctor.call(
            "mute_participant", {"participant_id": patient_pid, "source": "microphone"}
        )
        assert muted["ok"], muted
        await until(lambda: _muted(patient), STEP_TIMEOUT_S, "the page follows the host's mute")

        await _consent(patient)
        recording_id = await _start_recording(doctor, patient, shared / "recordings")
        recording = shared / "recordings" / recording_id

        node_b.kill()
        killed_ms = time.time() * 1000
        async with asyncio.timeout(RECOVERY_BOUND_SECONDS):  # counted from the kill

            async def page_resumed_elsewhere() -> bool:
                now = await page_state(patient)
                return (
                    now["node"] not in (None, node_b.base_url)
                    and now["connected"]
                    and not now["reconnecting"]
                )

            await until(page_resumed_elsewhere, RECOVERY_BOUND_SECONDS, "the page resumes")
            resumed_ms = time.time() * 1000
            await asyncio.gather(
                # A frame presented after the resume: the new connections' video.
                first_frame_after(patient, doctor_pid, resumed_ms, RECOVERY_BOUND_SECONDS),
                doctor.reconnected(RECOVERY_BOUND_SECONDS),
            )
            # Video again (a few new frames), as the page's one new frame: not a frame rate.
            await doctor.receives(patient_pid, "video", 5, RECOVERY_BOUND_SECONDS)
        print(f"\n[cluster page] kill → page video again: {time.time() - killed_ms / 1000:.2f} s")
        survivor = (await page_state(patient))["node"]
        assert survivor in (node_a.base_url, node_c.base_url)
        assert doctor.served_by[-1] == survivor, "both on the consult's new node"
        assert (await page_state(patient))["view"] == "consult"

        reviewer = await asyncio.to_thread(node_a.token, "qa-1", "reviewer", HOSPITAL)
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{node_a.base_url}/api/recordings/{recording_id}",
                headers={"Authorization": f"Bearer {reviewer}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            assert (await response.json())["status"] == "recovered"
        manifest = json.loads((recording / "manifest.json").read_text())
        assert manifest["status"] == "recovered"

        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{node_c.base_url}/api/consults/{consult['id']}/end",
                headers={"Authorization": f"Bearer {doctor_token}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        await expect(patient.locator("body")).to_have_attribute("data-view", "ended")
        await doctor.next("consult_ended")
        host = node_a if survivor == node_a.base_url else node_c
        await until(lambda: _holds_nothing(host), STEP_TIMEOUT_S, "the new node closes the media")
        pcs = await patient.evaluate(
            "() => [window.teleconsult.publisherPc?.connectionState,"
            " window.teleconsult.subscriberPc?.connectionState]"
        )
        assert pcs == ["closed", "closed"]


async def _muted(page: Page) -> bool:
    return bool((await page_state(page))["muted"]["microphone"])


async def _has_media(folder: Path) -> bool:
    def written() -> bool:
        return any(f.stat().st_size > 4096 for f in folder.glob("*") if f.suffix != ".json")

    return await asyncio.to_thread(written)


async def _holds_nothing(node: TeleconsultServer) -> bool:
    return bool((await node_holds(node))["consults"] == 0)


#: A rolling restart: short heartbeats, and a death noticed only after two minutes, longer than the
#: test waits for the visit after each restart: a node that stops in order must hand its
#: consults over by itself, not by dying.
ROLLING_TIMING = {"node_heartbeat_seconds": 0.3, "node_dead_after_seconds": 120.0}
#: A node stopping in order exits within this (else it is killed, and the test fails).
NODE_STOP_SECONDS = 30.0
#: The page's subscriber connection, remembered before a restart (is it replaced after?).
REMEMBER_MEDIA = "() => { window.mediaBeforeRestart = window.teleconsult.subscriberPc; }"
NEW_MEDIA_CONNECTED = """() => {
  const pc = window.teleconsult.subscriberPc;
  return Boolean(pc) && pc !== window.mediaBeforeRestart && pc.connectionState === "connected";
}"""


async def test_the_visit_goes_on_through_a_rolling_restart_of_all_three_nodes(
    cluster_visit: VisitAcrossThreeNodes,
) -> None:
    async with cluster_visit(ROLLING_TIMING) as visit:
        nodes, consult, doctor, patient = visit.nodes, visit.consult, visit.doctor, visit.patient
        doctor_pid, patient_pid, shared = visit.doctor_pid, visit.patient_pid, visit.shared
        await _consent(patient)
        recordings = [await _start_recording(doctor, patient, shared / "recordings")]

        restarted: list[str] = []
        for turn in range(3):
            # The node hosting the visit first, while there is one not restarted yet.
            name = await _next_to_restart(nodes, restarted)
            node = nodes[name]
            hosted_here = (await node_holds(node))["consults"] == 1
            doctor_moves = len(doctor.served_by)
            await patient.evaluate(REMEMBER_MEDIA)
            assert await asyncio.to_thread(node.stop, NODE_STOP_SECONDS) == 0, "stopped in order"
            stopped_ms = time.time() * 1000
            await node.start(healthy_within=STEP_TIMEOUT_S)  # a start on a loaded machine
            restarted.append(name)
            if hosted_here:
                # Both sides came back by themselves, on new media connections elsewhere.
                await until(
                    lambda: _evaluates(patient, NEW_MEDIA_CONNECTED),
                    STEP_TIMEOUT_S,
                    f"the page's new media after {name}'s restart",
                )
                await doctor.reconnected(STEP_TIMEOUT_S)
                assert len(doctor.served_by) > doctor_moves, "the doctor resumed elsewhere"
                await first_frame_after(patient, doctor_pid, stopped_ms, STEP_TIMEOUT_S)
            await _video_both_ways(patient, doctor, doctor_pid, patient_pid)
            # The page's signaling works: its chat reaches the doctor.
            await _chat_reaches(patient, doctor, f"Still here after restart {turn + 1}.")
            if hosted_here:
                # A recording stopped with its node (complete files): the host starts another.
                recordings.append(await _start_recording(doctor, patient, shared / "recordings"))
            print(f"\n[rolling restart] {name} restarted (hosted the visit: {hosted_here})")
        assert sorted(restarted) == ["a", "b", "c"]
        assert len(recordings) >= 2, "the visit moved at least once"
        assert (await page_state(patient))["view"] == "consult"

        survivor = next(n for n in nodes.values() if n.base_url == doctor.served_by[-1])
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{survivor.base_url}/api/consults/{consult['id']}/end",
                headers={"Authorization": f"Bearer {visit.doctor_token}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        await expect(patient.locator("body")).to_have_attribute("data-view", "ended")
        reviewer = await asyncio.to_thread(survivor.token, "qa-1", "reviewer", HOSPITAL)
        await until(
            lambda: _all_complete(survivor, reviewer, consult["id"], recordings),
            STEP_TIMEOUT_S,
            "every segment of the recording is catalogued complete",
        )
        for recording_id in recordings:
            assert await _has_media(shared / "recordings" / recording_id), recording_id


async def _next_to_restart(nodes: dict[str, TeleconsultServer], restarted: list[str]) -> str:
    """The node hosting the visit if it was not restarted yet, else the next one that was not."""
    waiting = [name for name in sorted(nodes) if name not in restarted]
    for name in waiting:
        if (await node_holds(nodes[name]))["consults"]:
            return name
    return waiting[0]


async def _evaluates(page: Page, script: str) -> bool:
    return bool(await page.evaluate(script))


async def _video_both_ways(
    patient: Page, doctor: ClusterParticipant, doctor_pid: str, patient_pid: str
) -> None:
    """New video frames decoded on the page (getStats' framesDecoded grows), and new ones at
    the doctor."""
    decoded = await inbound_total(patient, "video", "framesDecoded")

    async def decoding() -> bool:
        return await inbound_total(patient, "video", "framesDecoded") >= decoded + 20

    await asyncio.gather(
        until(decoding, STEP_TIMEOUT_S, "the page decodes the doctor's video"),
        doctor.receives(patient_pid, "video", 20, STEP_TIMEOUT_S),
    )


async def _chat_reaches(patient: Page, doctor: ClusterParticipant, text: str) -> None:
    """The patient sends ``text`` from the page's chat; the doctor receives it."""
    await patient.locator("#chat-input").fill(text)
    await patient.locator("#chat-send").click()
    async with asyncio.timeout(STEP_TIMEOUT_S):
        while (await doctor.next("chat_message", STEP_TIMEOUT_S))["text"] != text:
            pass


async def _consent(patient: Page) -> None:
    """The patient agrees to the recording, on the page."""
    await patient.get_by_role("button", name="I agree to this consult being recorded").click()
    await expect(patient.locator("#view-consult #recording-consent-status")).to_have_text(
        "You agreed to this consult being recorded."
    )


async def _start_recording(doctor: ClusterParticipant, patient: Page, recordings: Path) -> str:
    """The host starts the recording; the page shows it, and some of it is on disk. Its id."""
    started = await doctor.call("start_recording", {})
    assert started["ok"], started
    await expect(patient.locator("#recording-indicator")).to_be_visible()
    recording_id = str(started["recording_id"])
    folder = recordings / recording_id
    await until(lambda: _has_media(folder), STEP_TIMEOUT_S, "some of the visit is on disk")
    return recording_id


async def _all_complete(
    node: TeleconsultServer, reviewer: str, consult_id: str, recording_ids: list[str]
) -> bool:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{node.base_url}/api/recordings",
            params={"consult_id": consult_id},
            headers={"Authorization": f"Bearer {reviewer}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        found = {r["id"]: r["status"] for r in (await response.json())["recordings"]}
    return found == dict.fromkeys(recording_ids, "complete")
