"""Bad requests from a client become MediaError codes; unusable candidates are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from media import MediaError
from media.peer import parse_candidate

from .clients import TestParticipant

HOST = "842163049 1 udp 1677729535 127.0.0.1 50000 typ host generation 0"


def test_candidate_is_parsed_with_or_without_its_prefix() -> None:
    for text in (HOST, "candidate:" + HOST):
        candidate = parse_candidate(text, "0", 0)
        assert candidate is not None and candidate.ip == "127.0.0.1"
        assert candidate.sdpMid == "0"


def test_mdns_and_tcp_candidates_are_refused() -> None:
    assert parse_candidate(HOST.replace("127.0.0.1", "1f2e.local"), "0", None) is None
    assert parse_candidate(HOST.replace("udp", "tcp") + " tcptype passive", "0", None) is None


def test_unparsable_candidate_is_invalid() -> None:
    with pytest.raises(MediaError) as error:
        parse_candidate("candidate:garbage", "0", 0)
    assert error.value.code == "invalid_candidate"
    with pytest.raises(MediaError):
        parse_candidate(HOST, None, None)


async def test_client_requests_without_sense_get_error_codes(
    participants: Callable[[str], TestParticipant],
) -> None:
    patient = participants("patient")
    await patient.join()
    assert patient.media is not None

    with pytest.raises(MediaError) as error:
        await patient.media.handle_subscriber_answer("v=0\r\n")
    assert error.value.code == "no_pending_offer"

    with pytest.raises(MediaError) as error:
        await patient.media.handle_publisher_offer("this is not sdp")
    assert error.value.code == "invalid_sdp"

    with pytest.raises(MediaError) as error:
        await patient.media.add_ice_candidate("sideways", HOST, "0", 0)
    assert error.value.code == "invalid_candidate"

    mdns = HOST.replace("127.0.0.1", "1f2e.local")
    assert await patient.media.add_ice_candidate("publisher", mdns, "0", 0) is False
    # Held until the offer arrives, then applied.
    assert await patient.media.add_ice_candidate("publisher", HOST, "0", 0) is True
    await patient.publish()
    assert await patient.media.add_ice_candidate("publisher", "", "0", 0) is True
