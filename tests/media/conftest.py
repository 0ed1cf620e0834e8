"""Fixtures for media tests: a media server on loopback and browser stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from media import ConsultMedia, MediaConfig, MediaServer

from .clients import TestParticipant


@pytest.fixture
async def media_server() -> AsyncIterator[MediaServer]:
    server = MediaServer(MediaConfig(addresses=["127.0.0.1"], ice_servers=[]))
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
