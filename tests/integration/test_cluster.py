"""Three nodes on loopback, one Redis, one PostgreSQL: a consult's media goes on one node, its
participants may reach any node, and the visit survives its node's death and a rolling restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY
from sqlalchemy import select

from clinical.signing import DocumentSigner, load_public_key, verify
from config.database import Database
from config.keys import SharedKey, with_shared_keys
from config.secrets import SecretBox
from config.settings import (
    CLINICAL_KEY_FILE,
    JWT_SECRET_FILE,
    Settings,
    new_clinical_signing_key,
)
from migrations.runner import upgrade
from recordings.links import PlaybackLinks
from rooms.identity import Identity, Role
from rooms.nodes import Node, RedisNodes
from signaling.access_log import AccessLogger
from signaling.app import create_app
from signaling.auth import issuer_from_settings
from signaling.context import SERVICES
from tests.conftest import free_tcp_port
from tests.integration.cluster_client import ClusterParticipant, serve_environment
from tests.integration.live import HOSPITAL, NO_RATE_LIMITS, LiveServer, participant_id
from tests.integration.test_webhooks import Receiver, api, receiving, subscribe

pytestmark = pytest.mark.redis

#: Short heartbeats, so that a death is noticed in about 2 s (the production default is 10 s).
CLUSTER_TIMING = {"node_heartbeat_seconds": 0.3, "node_dead_after_seconds": 2.0}
#: The issue's bound: after its node died, a visit has video again within this many seconds.
RECOVERY_BOUND_SECONDS = 15
#: A document as the clinical services sign them (canonical JSON, decimals as strings).
DOCUMENT = {"kind": "note", "text": "Rest and fluids.", "dose_mg": "2.5"}
#: A node stopping in order finishes within this (a hang fails the test instead of the run).
NODE_STOP_SECONDS = 30


class InProcessNode:
    """A node serving in the test's own process; it can be stopped (in order) and restarted.

    :param settings: its settings (its port and URL among them).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_node_url()
        self._server: TestServer | None = None

    async def start(self) -> None:
        """Serve (again)."""
        self._server = TestServer(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.settings.port,
            access_log_class=AccessLogger,
        )
        await self._server.start_server()

    async def stop(self) -> None:
        """Stop in order: clients are told to go elsewhere."""
        if self._server is not None:
            async with asyncio.timeout(NODE_STOP_SECONDS):
                await self._server.close()
            self._server = None

    @property
    def node_id(self) -> str:
        """The node's id in the cluster."""
        assert self._server is not None
        return self._server.app[SERVICES].node_id

    @property
    def hosted(self) -> list[str]:
        """The consults whose media this node hosts."""
        assert self._server is not None
        return self._server.app[SERVICES].media.consult_ids


#: The most nodes a test of this module runs (their origins are the cluster's, known upfront).
MAX_NODES = 3


@pytest.fixture
def node_settings(
    postgres_url: str, redis_url: str, settings_factory: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings of one node of the test's cluster: its own port and URL, the shared rest (the
    cluster's origins among it: every node's)."""
    ports = [free_tcp_port() for _ in range(MAX_NODES)]
    origins = ",".join(f"http://127.0.0.1:{port}" for port in ports)

    def build(**overrides: Any) -> Settings:
        port = ports.pop()
        return settings_factory(
            database_url=postgres_url,
            redis_url=redis_url,
            port=port,
            node_url=f"http://127.0.0.1:{port}",
            cluster_origins=origins,
            **NO_RATE_LIMITS,
            **{**CLUSTER_TIMING, **overrides},
        )

    return build


@asynccontextmanager
async def cluster(*all_settings: Settings) -> AsyncIterator[list[InProcessNode]]:
    """Nodes serving with these settings, on a migrated database."""
    await asyncio.to_thread(upgrade, all_settings[0].effective_database_url)
    nodes = [InProcessNode(settings) for settings in all_settings]
    try:
        for node in nodes:
            await node.start()
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


@asynccontextmanager
async def client_of(node: InProcessNode | Settings) -> AsyncIterator[LiveServer]:
    """An HTTP client and token issuer pointed at a node."""
    settings = node.settings if isinstance(node, InProcessNode) else node
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    async with ClientSession() as http:
        yield LiveServer(settings.effective_node_url(), settings, issuer, http)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds, failing with ``what`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (state of another task)
            await asyncio.sleep(0.05)


async def admit_visit(
    live: LiveServer,
    consult: dict[str, Any],
    doctor: ClusterParticipant,
    patient: ClusterParticipant,
    doctor_via: str | None,
    patient_via: str,
) -> None:
    """The doctor joins (unless ``doctor_via`` is None: joined already), the patient waits,
    the doctor admits, both publish."""
    if doctor_via is not None:
        assert (await doctor.join(doctor_via))["status"] == "joined"
    assert (await patient.join(patient_via))["status"] == "lobby"
    patient_pid = participant_id(consult, "pt-li")
    assert (await doctor.call("admit", {"participant_id": patient_pid}))["ok"]
    await patient.next("admitted")
    await doctor.publish()
    await patient.publish()


async def sees_each_other(
    consult: dict[str, Any],
    doctor: ClusterParticipant,
    patient: ClusterParticipant,
    timeout: float,
) -> None:
    """Video arrives both ways (new frames, on the media connections of now)."""
    doctor_pid, patient_pid = participant_id(consult, "dr-wang"), participant_id(consult, "pt-li")
    await asyncio.gather(
        patient.receives(doctor_pid, "video", 20, timeout),
        doctor.receives(patient_pid, "video", 20, timeout),
    )


async def test_a_visit_placed_on_b_is_joined_through_a_and_c_and_ended_from_c(
    node_settings: Callable[..., Settings],
) -> None:
    # The hospital's media must stay in region "b": only node B may host its consults.
    regions = {"hospital_regions": {HOSPITAL: "b"}}
    a = node_settings(node_region="a", **regions)
    b = node_settings(node_region="b", **regions)
    c = node_settings(node_region="c", **regions)
    async with cluster(a, b, c) as (node_a, node_b, node_c), client_of(node_a) as live:
        consult = await live.schedule_visit()
        doctor = ClusterParticipant([node_a.url], live.token_of(consult, "dr-wang"), consult["id"])
        patient = ClusterParticipant([node_c.url], live.token_of(consult, "pt-li"), consult["id"])
        try:
            await admit_visit(live, consult, doctor, patient, node_a.url, node_c.url)
            # Each reached its own node first, and was sent on to B, where the media is.
            assert doctor.served_by == [node_b.url] and patient.served_by == [node_b.url]
            assert node_b.hosted == [consult["id"]] and not node_a.hosted and not node_c.hosted
            await sees_each_other(consult, doctor, patient, timeout=30)

            async with live.http.get(f"{node_b.url}/readyz") as response:
                holds = (await response.json())["node"]
            assert (holds["region"], holds["consults"], holds["publishers"]) == ("b", 1, 2)

            patient_pid = participant_id(consult, "pt-li")
            ack = await doctor.call(
                "mute_participant", {"participant_id": patient_pid, "source": "microphone"}
            )
            assert ack["ok"], ack
            assert (await patient.next("muted_by_host"))["source"] == "microphone"

            async with live.http.post(
                f"{node_c.url}/api/consults/{consult['id']}/end",
                headers=live.headers(live.token_of(consult, "dr-wang")),
            ) as response:
                assert response.status == 200, await response.text()
            await doctor.next("consult_ended")
            await patient.next("consult_ended")
            await until(lambda: not node_b.hosted, 10, "B closes the consult's media")
        finally:
            await doctor.close()
            await patient.close()


async def test_no_client_is_sent_to_a_node_registered_under_a_foreign_origin(
    node_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    async with (
        cluster(node_settings(), node_settings()) as (node_a, node_b),
        client_of(node_a) as live,
    ):
        consult = await live.schedule_visit()
        # A process that reached the cluster's Redis announces itself, idle, at a URL of its own
        # origin, and claims the consult: the nodes must not send anyone there.
        rogue = Node("rogue", "https://rogue.example.net", ["127.0.0.1"])
        impostor = RedisNodes(redis_client, dead_after_seconds=60)
        await impostor.heartbeat(rogue)
        await redis_client.set(f"teleconsult:media:{consult['id']}", "rogue", ex=60)
        doctor = ClusterParticipant([node_a.url], live.token_of(consult, "dr-wang"), consult["id"])
        patient = ClusterParticipant([node_b.url], live.token_of(consult, "pt-li"), consult["id"])
        try:
            await admit_visit(live, consult, doctor, patient, node_a.url, node_b.url)
            assert {*doctor.served_by, *patient.served_by} == {node_a.url}, "taken back by A"
            assert node_a.hosted == [consult["id"]]
            await sees_each_other(consult, doctor, patient, timeout=30)
        finally:
            await doctor.close()
            await patient.close()
            await impostor.leave(rogue, [])


async def test_a_visit_goes_on_through_a_rolling_restart_of_every_node(
    node_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    # A node that stops in order is out of the directory at once: the consults it held move
    # at the clients' first return, with no death to wait for (made longer than the test).
    timing = {"node_dead_after_seconds": 120}
    async with (
        cluster(*(node_settings(**timing) for _ in range(3))) as nodes,
        client_of(nodes[0]) as live,
    ):
        directory = RedisNodes(redis_client)
        urls = [node.url for node in nodes]
        consult = await live.schedule_visit()
        doctor = ClusterParticipant(urls, live.token_of(consult, "dr-wang"), consult["id"])
        patient = ClusterParticipant(urls[::-1], live.token_of(consult, "pt-li"), consult["id"])
        try:
            await admit_visit(live, consult, doctor, patient, urls[0], urls[2])
            await sees_each_other(consult, doctor, patient, timeout=30)
            for node in nodes:
                node_id = node.node_id
                await node.stop()
                assert node_id not in {n.node_id for n in await directory.live_nodes()}
                # No speed is asserted here (the death test holds the bound): generous.
                await asyncio.gather(doctor.reconnected(60), patient.reconnected(60))
                await sees_each_other(consult, doctor, patient, timeout=60)
                await node.start()
            # Every node served the visit at some point or handed it on; it was never lost.
            assert len(doctor.served_by) >= 2 and len(patient.served_by) >= 2
        finally:
            await doctor.close()
            await patient.close()


async def serve_in_subprocess(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    """``teleconsult serve`` with ``settings``, as a node that can be killed; ready once it
    answers /readyz."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "teleconsult"),
        "serve",
        env=serve_environment(settings),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    async with ClientSession() as http, asyncio.timeout(60):
        while True:
            try:
                async with http.get(f"{settings.effective_node_url()}/readyz") as response:
                    if response.status == 200:
                        return process
            except OSError:
                pass
            assert process.returncode is None, f"the node stopped at start: see {log}"
            await asyncio.sleep(0.2)


async def test_the_media_node_killed_mid_visit_the_visit_and_its_recording_go_on(
    node_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    a, b_settings, c = node_settings(), node_settings(), node_settings()
    await asyncio.to_thread(upgrade, b_settings.effective_database_url)
    # B alone at first: the consult's first participant arrives there and it is placed there.
    node_b = await serve_in_subprocess(b_settings, tmp_path / "node-b.log")
    try:
        b_url = b_settings.effective_node_url()
        async with client_of(b_settings) as live:
            consult = await live.schedule_visit()
            doctor = ClusterParticipant([b_url], live.token_of(consult, "dr-wang"), consult["id"])
            assert (await doctor.join(b_url))["status"] == "joined"
        async with cluster(a, c) as (node_a, node_c), client_of(node_a) as live:
            doctor.urls = [b_url, node_a.url, node_c.url]
            patient = ClusterParticipant(
                [node_c.url, node_a.url], live.token_of(consult, "pt-li"), consult["id"]
            )
            try:
                await admit_visit(live, consult, doctor, patient, None, node_c.url)
                assert doctor.served_by == [b_url] and patient.served_by == [b_url]
                await sees_each_other(consult, doctor, patient, timeout=30)
                assert (await patient.call("recording_consent", {"agree": True}))["ok"]
                started = await doctor.call("start_recording", {})
                assert started["ok"], started
                recording_id = started["recording_id"]
                await asyncio.sleep(1.5)  # some seconds of the visit are on disk

                os.kill(node_b.pid, signal.SIGKILL)
                await node_b.wait()
                async with asyncio.timeout(RECOVERY_BOUND_SECONDS):  # counted from the kill
                    await asyncio.gather(
                        doctor.reconnected(RECOVERY_BOUND_SECONDS),
                        patient.reconnected(RECOVERY_BOUND_SECONDS),
                    )
                    await sees_each_other(consult, doctor, patient, RECOVERY_BOUND_SECONDS)
                survivor = doctor.served_by[-1]
                assert survivor in (node_a.url, node_c.url) and patient.served_by[-1] == survivor

                reviewer = live.token("qa-1", "reviewer")
                async with live.http.get(
                    f"{node_a.url}/api/recordings/{recording_id}", headers=live.headers(reviewer)
                ) as response:
                    assert response.status == 200, await response.text()
                    assert (await response.json())["status"] == "recovered"
                manifest = json.loads(
                    (tmp_path / "recordings" / recording_id / "manifest.json").read_text()
                )
                assert manifest["status"] == "recovered"
                # And the visit is recorded on, as a new recording, on the node that took it.
                doctor_token = live.token_of(consult, "dr-wang")
                async with live.http.get(
                    f"{survivor}/api/consults/{consult['id']}/timeline",
                    headers=live.headers(doctor_token),
                ) as response:
                    events = (await response.json())["events"]
                continued = [e for e in events if e["kind"] == "recording_continued"]
                assert [e["detail"]["continues"] for e in continued] == [recording_id]
            finally:
                await doctor.close()
                await patient.close()
    finally:
        if node_b.returncode is None:
            node_b.kill()
            await node_b.wait()


REVIEWER = Identity("qa-1", "QA Reviewer", Role.REVIEWER, HOSPITAL)
#: A short job lease, so that a survivor takes a stopped node's jobs in about a second.
QUICK_LEASE = {"job_lease_seconds": 0.9}


def retention_sweeps() -> float:
    """Retention sweeps run so far by the nodes of this process (they share its metrics)."""
    return REGISTRY.get_sample_value("teleconsult_retention_sweeps_total") or 0.0


async def test_retention_runs_on_one_node_of_three_and_moves_when_that_node_stops(
    node_settings: Callable[..., Settings], redis_client: aioredis.Redis
) -> None:
    before = retention_sweeps()
    async with cluster(*(node_settings(**QUICK_LEASE) for _ in range(3))) as nodes:
        await until(lambda: retention_sweeps() == before + 1, 30, "the cluster's first sweep")
        holder_id = await redis_client.get("teleconsult:lease:retention")
        holder = next(node for node in nodes if node.node_id == holder_id)
        await asyncio.sleep(4 * QUICK_LEASE["job_lease_seconds"])  # several renewals
        assert retention_sweeps() == before + 1  # the others wait; the next sweep is in an hour

        await holder.stop()
        await until(lambda: retention_sweeps() == before + 2, 30, "a survivor's sweep")
        survivor_id = await redis_client.get("teleconsult:lease:retention")
        assert survivor_id != holder_id
        assert survivor_id in {node.node_id for node in nodes if node is not holder}
        await asyncio.sleep(4 * QUICK_LEASE["job_lease_seconds"])
        assert retention_sweeps() == before + 2


async def test_each_webhook_is_delivered_once_by_three_nodes_delivering_at_once(
    node_settings: Callable[..., Settings],
) -> None:
    quick_outbox = {"outbox_backoff_seconds": 0.05, "outbox_poll_seconds": 0.05}
    async with (
        receiving(Receiver()) as receiver,
        cluster(*(node_settings(**quick_outbox) for _ in range(3))) as nodes,
    ):
        async with client_of(nodes[0]) as live:
            await subscribe(live, receiver, ["consult.scheduled", "consult.ended"])
        consults = []
        for number in range(9):  # scheduled and ended through each node in turn
            async with client_of(nodes[number % 3]) as live:
                consult = await live.schedule_visit()
                coordinator = live.token("coord-1", Role.COORDINATOR)
                end = f"/api/consults/{consult['id']}/end"
                status, _ = await api(live, coordinator, "POST", end)
                assert status == 200
                consults.append(consult)
        await receiver.wait_for(lambda: len(receiver.events) == 18, "all eighteen events")
        await asyncio.sleep(1.0)  # a second delivery of any would arrive by now
        assert len(receiver.received_ids) == len(set(receiver.received_ids)) == 18
        for consult in consults:
            assert receiver.of_consult(consult["id"]) == ["consult.scheduled", "consult.ended"]


async def test_nodes_without_a_configured_secret_share_the_clusters_keys(
    node_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    a = node_settings(jwt_secret=None, data_dir=tmp_path / "a")
    b = node_settings(jwt_secret=None, data_dir=tmp_path / "b")
    await asyncio.to_thread(upgrade, a.effective_database_url)
    # Node A served alone before: its data folder has the secret its links were signed with.
    own_secret, own_key = a.signing_secret(), a.secrets_keys()[0]
    link = PlaybackLinks(own_secret, 600).sign(REVIEWER, "rec-1")
    stored = SecretBox(a.secrets_keys()).encrypt("Bearer fhir-credential")

    a, b = await with_shared_keys(a), await with_shared_keys(b)
    assert a.signing_secret() == b.signing_secret() == own_secret
    assert a.secrets_keys()[0] == b.secrets_keys()[0] == own_key
    assert not (tmp_path / "b" / JWT_SECRET_FILE).exists()  # never a node's own file
    assert PlaybackLinks(b.signing_secret(), 600).verify(link, "rec-1").sub == REVIEWER.sub
    assert SecretBox(b.secrets_keys()).decrypt(stored) == "Bearer fhir-credential"
    # A join link minted by node A opens the consult on node B, and the other way round.
    async with cluster(a, b) as (node_a, node_b), client_of(node_a) as via_a:
        consult = await via_a.schedule_visit()
        doctor = ClusterParticipant([node_b.url], via_a.token_of(consult, "dr-wang"), consult["id"])
        try:
            assert (await doctor.join(node_b.url))["status"] == "joined"
        finally:
            await doctor.close()


async def test_nodes_sign_with_the_clusters_key_and_publish_a_nodes_former_key(
    node_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    a, b, c = (node_settings(data_dir=tmp_path / name) for name in "abc")
    await asyncio.to_thread(upgrade, a.effective_database_url)
    # Nodes A and C each served alone before and signed with their own data folder's key.
    signed_by_a = DocumentSigner.from_settings(a).sign(DOCUMENT)
    signed_by_c = DocumentSigner.from_settings(c).sign(DOCUMENT)
    assert signed_by_a.key_id != signed_by_c.key_id

    a, b, c = [await with_shared_keys(settings) for settings in (a, b, c)]
    signers = [DocumentSigner.from_settings(settings) for settings in (a, b, c)]
    assert {signer.key_id for signer in signers} == {signed_by_a.key_id}  # A offered first
    assert not (tmp_path / "b" / CLINICAL_KEY_FILE).exists()  # never a node's own file
    async with cluster(a, b, c) as nodes, ClientSession() as http:
        published = []
        for node in nodes:
            async with http.get(f"{node.url}/api/clinical/public-key") as response:
                published.append((await response.json())["keys"])
    assert published[0] == published[1] == published[2]
    keys = {key["key_id"]: load_public_key(key["public_key_pem"]) for key in published[0]}
    assert {key["key_id"]: key["retired"] for key in published[0]} == {
        signed_by_a.key_id: False,
        signed_by_c.key_id: True,
    }
    for signature in [signed_by_a, signed_by_c, *(s.sign(DOCUMENT) for s in signers)]:
        assert verify(DOCUMENT, signature.value, keys[signature.key_id])


async def test_a_key_the_operator_rotated_away_from_stays_published_as_retired(
    node_settings: Callable[..., Settings],
) -> None:
    first, second = new_clinical_signing_key(), new_clinical_signing_key()
    before = node_settings(clinical_signing_key=first)
    async with cluster(before) as nodes, ClientSession() as http:
        signed_before = DocumentSigner.from_settings(before).sign(DOCUMENT)
        async with http.get(f"{nodes[0].url}/api/clinical/public-key") as response:
            assert [k["retired"] for k in (await response.json())["keys"]] == [False]
    # The operator sets a new TELECONSULT_CLINICAL_SIGNING_KEY on every node and restarts them.
    after = [node_settings(clinical_signing_key=second) for _ in range(2)]
    async with cluster(*after) as nodes, ClientSession() as http:
        signed_after = DocumentSigner.from_settings(after[0]).sign(DOCUMENT)
        for node in nodes:
            async with http.get(f"{node.url}/api/clinical/public-key") as response:
                published = await response.json()
            assert published["key_id"] == signed_after.key_id
            assert {k["key_id"]: k["retired"] for k in published["keys"]} == {
                signed_after.key_id: False,
                signed_before.key_id: True,
            }
            keys = {k["key_id"]: load_public_key(k["public_key_pem"]) for k in published["keys"]}
            for signature in (signed_before, signed_after):
                assert verify(DOCUMENT, signature.value, keys[signature.key_id])


async def test_the_clinical_key_stored_in_the_database_is_encrypted(
    node_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    a = node_settings(data_dir=tmp_path / "a", secrets_key=Fernet.generate_key().decode())
    await asyncio.to_thread(upgrade, a.effective_database_url)
    a = await with_shared_keys(a)
    assert a.clinical_signing_key is not None
    database = Database(a.effective_database_url)
    try:
        async with database.sessions() as session:
            stored = await session.scalar(
                select(SharedKey.value).where(SharedKey.name == CLINICAL_KEY_FILE)
            )
    finally:
        await database.dispose()
    assert stored is not None and "PRIVATE KEY" not in stored
    assert SecretBox(a.secrets_keys()).decrypt(stored) == a.clinical_signing_key


async def test_a_consult_waiting_without_media_keeps_its_node(
    node_settings: Callable[..., Settings],
) -> None:
    async with cluster(node_settings(), node_settings()) as nodes, client_of(nodes[0]) as live:
        consult = await live.schedule_visit()
        doctor = ClusterParticipant(
            [n.url for n in nodes], live.token_of(consult, "dr-wang"), consult["id"]
        )
        patient = ClusterParticipant(
            [n.url for n in nodes], live.token_of(consult, "pt-li"), consult["id"]
        )
        try:
            assert (await doctor.join(nodes[0].url))["status"] == "joined"
            # Nobody publishes for longer than a placement lives unrenewed (3 × the dead-node
            # time: 6 s here): the doctor's node still holds the consult.
            await asyncio.sleep(3 * CLUSTER_TIMING["node_dead_after_seconds"] + 2)
            other = next(n.url for n in nodes if n.url != doctor.served_by[-1])
            assert (await patient.join(other))["status"] == "lobby"
            assert patient.served_by[-1] == doctor.served_by[-1]
        finally:
            await doctor.close()
            await patient.close()
