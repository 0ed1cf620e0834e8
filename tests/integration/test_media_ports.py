"""A hospital's firewall opens one UDP range for media: the server's ICE sockets stay inside it,
and a participant who arrives when it is full is told so instead of waiting for media."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from aiortc import RTCPeerConnection

from config.settings import Settings
from tests.integration.live import admitted_visit, participant_id, serving
from tests.integration.media_client import MediaClient


def free_udp_range(count: int) -> tuple[int, int]:
    """``count`` consecutive UDP ports of 127.0.0.1 that nothing holds now (first, last)."""
    while True:
        first = random.randint(20000, 30000)
        with ExitStack() as probes:
            try:
                for port in range(first, first + count):
                    probe = probes.enter_context(socket.socket(type=socket.SOCK_DGRAM))
                    probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first, first + count - 1


def server_ports(pc: RTCPeerConnection) -> list[int]:
    """The ports of the server's candidates in the description a client's peer received."""
    sdp = pc.remoteDescription.sdp
    return [int(line.split()[5]) for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_a_visits_server_candidates_are_all_inside_the_media_range(
    database_url: str, settings_factory: Callable[..., Settings], clients: Callable[..., Any]
) -> None:
    first, last = free_udp_range(4)  # a publisher and a subscriber connection per participant
    settings = settings_factory(database_url=database_url, media_ports=(first, last))
    async with serving(settings) as live:
        consult, doctor_signaling, patient_signaling = await admitted_visit(live, clients)
        doctor, patient = MediaClient(doctor_signaling), MediaClient(patient_signaling)
        try:
            await doctor.publish()
            await patient.publish()
            doctor_id, patient_id = (participant_id(consult, s) for s in ("dr-wang", "pt-li"))
            assert await patient.wait_for(doctor_id, "video", 30, timeout=30) >= 30
            assert await doctor.wait_for(patient_id, "video", 30, timeout=30) >= 30
            ports = [
                port
                for client in (doctor, patient)
                for pc in (client.publisher, client.subscriber)
                for port in server_ports(pc)
            ]
            assert all(first <= port <= last for port in ports), (ports, first, last)
            assert len(set(ports)) == 4  # one port per server connection (bundled)
        finally:
            await doctor.close()
            await patient.close()


async def test_a_participant_arriving_when_the_media_range_is_full_gets_an_error_code(
    database_url: str, settings_factory: Callable[..., Settings], clients: Callable[..., Any]
) -> None:
    first, last = free_udp_range(1)
    settings = settings_factory(database_url=database_url, media_ports=(first, last))
    async with serving(settings) as live:
        consult = await live.schedule_visit()
        doctor_signaling = await clients(live.url, live.token_of(consult, "dr-wang"))
        assert (await doctor_signaling.call("join", {"consult_id": consult["id"]}))["ok"]
        doctor = MediaClient(doctor_signaling)
        with socket.socket(type=socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", first))  # something else holds the range's only port
            try:
                doctor.publisher.addTransceiver("video", direction="sendonly")
                await doctor.publisher.setLocalDescription(await doctor.publisher.createOffer())
                offer = doctor.publisher.localDescription
                ack = await doctor_signaling.call("publish", {"type": offer.type, "sdp": offer.sdp})
            finally:
                await doctor.close()
    assert ack["ok"] is False
    assert ack["error"]["code"] == "media_ports_exhausted", ack


async def test_a_participant_whose_receiving_connection_finds_the_range_full_gets_the_error_code(
    database_url: str, settings_factory: Callable[..., Settings], clients: Callable[..., Any]
) -> None:
    first, last = free_udp_range(2)
    settings = settings_factory(database_url=database_url, media_ports=(first, last))
    async with serving(settings) as live:
        _, doctor_signaling, patient_signaling = await admitted_visit(live, clients)
        doctor, patient = MediaClient(doctor_signaling), MediaClient(patient_signaling)
        try:
            await doctor.publish()  # the doctor's publishing connection takes one port
            (doctor_port,) = set(server_ports(doctor.publisher))
            free = last if doctor_port == first else first
            with socket.socket(type=socket.SOCK_DGRAM) as taken:
                taken.bind(("127.0.0.1", free))  # something else holds the other one
                # The patient only receives: the server's offer of the doctor's camera and
                # microphone needs a port for the patient's receiving connection, and finds none.
                await patient.subscribe()
                error = await patient_signaling.next("media_error", timeout=10)
            assert error["code"] == "media_ports_exhausted", error
            assert patient_signaling.events["subscriber_offer"].empty(), "no offer without ports"
        finally:
            await doctor.close()
            await patient.close()
