"""Fixtures for media tests: a media server on loopback and browser stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from media import ConsultMedia, MediaConfig, MediaServer

from .clients import TestParticipant

#: The Opus bit rate the media server asks publishers for, as ``teleconsult serve`` does.
VOICE_BITRATE = 20_000

#: Runs a module's tests through both receive paths: ``pytestmark = BOTH_RECEIVE_PATHS``.
BOTH_RECEIVE_PATHS = pytest.mark.parametrize(
    "media_server", [False, True], ids=["aiortc_receiver", "packet_inlet"], indirect=True
)


@pytest.fixture
async def media_server(request: pytest.FixtureRequest) -> AsyncIterator[MediaServer]:
    """A media server on loopback; a parametrized test may ask for the packet inlet."""
    inlet = bool(getattr(request, "param", False))
    config = MediaConfig(
        addresses=["127.0.0.1"], ice_servers=[], packet_inlet=inlet, voice_bitrate=VOICE_BITRATE
    )
    server = MediaServer(config)
    yield server
    await server.shutdown()


@pytest.fixture
async def consult(media_server: MediaServer) -> ConsultMedia:
    return media_server.room("consult-1")


@pytest.fixture
async def participants(
    consult: ConsultMedia,
) -> AsyncIterator[Callable[[str], TestParticipant]]:
    created: list[TestParticipant] = []

    def make(participant_id: str) -> TestParticipant:
        participant = TestParticipant(consult, participant_id)
        created.append(participant)
        return participant

    yield make
    for participant in created:
        await participant.close()
