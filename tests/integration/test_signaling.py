"""Participants join a consult over Socket.IO: lobby, admit, refusals and coded errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import socketio

from rooms.identity import Role
from tests.integration.live import LiveServer, join_token, participant_id

Connect = Callable[..., Any]


async def test_the_invited_doctor_joins_and_may_run_the_consult(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    ack = await doctor.call("join", {"consult_id": consult["id"]})
    assert ack["ok"] is True
    assert ack["status"] == "joined"
    assert ack["consult"]["state"] == "live"
    assert ack["grants"]["admit"] and ack["grants"]["end"]
    assert ack["participant"]["sub"] == "dr-wang"
    assert ack["ice_servers"] == []


async def test_the_patient_waits_in_the_lobby_until_the_doctor_admits(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    ack = await patient.call("join", {"consult_id": consult["id"]})
    assert ack["ok"] and ack["status"] == "lobby"
    assert ack["grants"]["lobby"] and not ack["grants"]["admit"]

    lobby = await doctor.next("lobby")
    assert [p["name"] for p in lobby["waiting"]] == ["Li Hua"]

    refused = await patient.call("publish", {"type": "offer", "sdp": "v=0\r\n"})
    assert refused["error"]["code"] == "in_lobby"
    refused = await patient.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    assert refused["error"]["code"] == "not_joined" or refused["error"]["code"] == "forbidden"

    admit = await doctor.call("admit", {"participant_id": lobby["waiting"][0]["participant_id"]})
    assert admit == {"ok": True}
    admitted = await patient.next("admitted")
    assert admitted["consult"]["id"] == consult["id"]
    joined = await doctor.next("participant_joined")
    assert joined["name"] == "Li Hua" and joined["status"] == "joined"
    assert (await doctor.next("lobby"))["waiting"] == []

    again = await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    assert again["error"]["code"] == "not_in_lobby"


async def test_the_host_arriving_after_the_patient_sees_who_waits(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    assert (await patient.call("join", {"consult_id": consult["id"]}))["status"] == "lobby"
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    ack = await doctor.call("join", {"consult_id": consult["id"]})
    assert [p["name"] for p in ack["waiting"]] == ["Li Hua"]


async def test_someone_not_invited_is_refused_with_a_code(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    stranger = await clients(live_server.url, live_server.token("pt-zhang", Role.PATIENT))
    ack = await stranger.call("join", {"consult_id": consult["id"]})
    assert ack == {
        "ok": False,
        "error": {"code": "not_invited", "message": "You are not invited to this consult"},
    }
    other = await live_server.schedule_visit()
    link_for_other = await clients(live_server.url, join_token(other, "pt-li"))
    ack = await link_for_other.call("join", {"consult_id": consult["id"]})
    assert ack["error"]["code"] == "wrong_consult"
    ack = await stranger.call("join", {"consult_id": "no-such-consult"})
    assert ack["error"]["code"] == "consult_not_found"


async def test_an_ended_consult_refuses_joins(live_server: LiveServer, clients: Connect) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    await doctor.call("join", {"consult_id": consult["id"]})
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    await patient.call("join", {"consult_id": consult["id"]})
    assert (await patient.call("end", {}))["error"]["code"] == "forbidden"
    assert await doctor.call("end", {}) == {"ok": True}
    ended = await patient.next("consult_ended")
    assert ended == {"consult_id": consult["id"], "by": "Dr. Wang Fang"}
    late = await clients(live_server.url, join_token(consult, "pt-li"))
    assert (await late.call("join", {"consult_id": consult["id"]}))["error"]["code"] == (
        "consult_ended"
    )


async def test_ending_over_rest_tells_everyone_connected(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    await doctor.call("join", {"consult_id": consult["id"]})
    async with live_server.http.post(
        f"{live_server.url}/api/consults/{consult['id']}/end",
        headers=live_server.headers(live_server.token("coord-1", Role.COORDINATOR)),
    ) as response:
        assert response.status == 200
    assert (await doctor.next("consult_ended"))["consult_id"] == consult["id"]


@pytest.mark.parametrize(
    ("token_kind", "code"),
    [("none", "token_missing"), ("garbage", "token_invalid"), ("expired", "token_expired")],
)
async def test_connections_without_a_valid_token_are_refused(
    live_server: LiveServer, token_kind: str, code: str
) -> None:
    token = {
        "none": None,
        "garbage": "abc.def.ghi",
        "expired": live_server.token("dr-wang", Role.DOCTOR, ttl=-60),
    }[token_kind]
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            live_server.url,
            auth={"token": token} if token else None,
            transports=["websocket"],
            wait_timeout=10,
        )
    assert refusals[0]["message"] == code
    assert refusals[0]["data"]["code"] == code


async def test_malformed_payloads_get_coded_errors_and_the_server_stays_up(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    for payload in (None, "join me", 42, [], {"consult": consult["id"]}, {"consult_id": ""}):
        ack = await doctor.call("join", payload)
        assert ack["ok"] is False
        assert ack["error"]["code"] == "invalid_payload", payload
    ack = await doctor.call("join", {"consult_id": consult["id"], "role": "admin"})
    assert ack["error"]["code"] == "invalid_payload"
    assert ack["error"]["details"][0]["field"] == "role"
    assert (await doctor.call("teleport", {}))["error"]["code"] == "unknown_event"
    assert (await doctor.call("publish", {"type": "offer", "sdp": "x"}))["error"]["code"] == (
        "not_joined"
    )
    assert (await doctor.call("mute", {"source": "nose", "muted": True}))["error"]["code"] == (
        "invalid_payload"
    )
    ack = await doctor.call("join", {"consult_id": consult["id"]})
    assert ack["ok"] is True
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["error"]["code"] == (
        "already_joined"
    )
    ack = await doctor.call("publish", {"type": "offer", "sdp": "this is not SDP"})
    assert ack["error"]["code"] == "invalid_sdp"
    ack = await doctor.call("subscriber_answer", {"type": "answer", "sdp": "v=0"})
    assert ack["ok"] is False
    async with live_server.http.get(f"{live_server.url}/healthz") as response:
        assert response.status == 200


async def test_mute_is_shown_to_the_others(live_server: LiveServer, clients: Connect) -> None:
    consult = await live_server.schedule_visit(
        kind="referral",
        participants=[{"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert"}],
    )
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    await doctor.call("join", {"consult_id": consult["id"]})
    expert = await clients(live_server.url, live_server.token_of(consult, "ex-zhao"))
    ack = await expert.call("join", {"consult_id": consult["id"]})
    assert ack["status"] == "joined"
    assert await expert.call("mute", {"source": "microphone", "muted": True}) == {"ok": True}
    update = await doctor.next("participant_updated")
    assert update["name"] == "Prof. Zhao"
    assert update["muted"] == {"microphone": True, "camera": False}


async def test_audio_only_is_acknowledged_and_shows_the_participants_video_paused(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit(
        kind="referral",
        participants=[{"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert"}],
    )
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    await doctor.call("join", {"consult_id": consult["id"]})
    expert = await clients(live_server.url, live_server.token_of(consult, "ex-zhao"))
    assert (await expert.call("audio_only", {"enabled": True}))["error"]["code"] == "not_joined"
    await expert.call("join", {"consult_id": consult["id"]})
    for junk in ({"enabled": "yes"}, {}, {"enabled": True, "for": "everyone"}):
        ack = await expert.call("audio_only", junk)
        assert ack["error"]["code"] == "invalid_payload", junk
    assert await expert.call("audio_only", {"enabled": True}) == {"ok": True}
    update = await doctor.next("participant_updated")
    assert update["name"] == "Prof. Zhao"
    assert update["muted"] == {"microphone": False, "camera": True}
    assert await expert.call("audio_only", {"enabled": False}) == {"ok": True}
    assert (await doctor.next("participant_updated"))["muted"]["camera"] is False


async def test_leaving_tells_the_others_and_the_participant_can_come_back(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    doctor = await clients(live_server.url, live_server.token_of(consult, "dr-wang"))
    await doctor.call("join", {"consult_id": consult["id"]})
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    await patient.call("join", {"consult_id": consult["id"]})
    await doctor.next("lobby")
    await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")})
    await patient.next("admitted")
    assert await patient.call("leave", {}) == {"ok": True}
    left = await doctor.next("participant_left")
    assert left == {"participant_id": participant_id(consult, "pt-li")}
    ack = await patient.call("join", {"consult_id": consult["id"]})
    assert ack["status"] == "joined", "an admitted patient does not wait again"


async def test_namesakes_of_two_hospitals_are_two_people_in_one_consult(
    live_server: LiveServer, clients: Connect
) -> None:
    # Both hospitals' identity providers call their Dr. Wang "dr-wang": two people, two seats.
    consult = await live_server.schedule_visit(
        kind="referral",
        participants=[
            {"sub": "dr-wang", "name": "Dr. Wang Lei", "role": "expert", "hospital": "h-west"}
        ],
    )
    seats = {(p["hospital"], p["sub"]): p["participant_id"] for p in consult["participants"]}
    assert set(seats) == {("h-east", "dr-wang"), ("h-west", "dr-wang")}
    east = await clients(live_server.url, live_server.token("dr-wang", Role.DOCTOR, "h-east"))
    west = await clients(live_server.url, live_server.token("dr-wang", Role.EXPERT, "h-west"))
    joined_east = await east.call("join", {"consult_id": consult["id"]})
    joined_west = await west.call("join", {"consult_id": consult["id"]})
    assert joined_east["participant"]["participant_id"] == seats[("h-east", "dr-wang")]
    assert joined_west["participant"]["participant_id"] == seats[("h-west", "dr-wang")]
    assert east.client.connected, "the namesake's join did not take the other's seat"
