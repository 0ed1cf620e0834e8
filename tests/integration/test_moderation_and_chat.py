"""Host controls and chat in a referral: mute, remove, and messages kept in the timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.integration.live import LiveServer, SignalingClient, join_token, participant_id

Connect = Callable[..., Any]
EXPERTS = [
    {"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert", "hospital": "h-north"},
    {"sub": "ex-sun", "name": "Dr. Sun", "role": "expert"},
]


async def referral(
    live_server: LiveServer, clients: Connect
) -> tuple[dict[str, Any], list[SignalingClient]]:
    consult = await live_server.schedule_visit(kind="referral", participants=EXPERTS)
    joined = []
    for sub in ("dr-wang", "ex-zhao", "ex-sun"):
        client = await clients(live_server.url, live_server.token_of(consult, sub))
        ack = await client.call("join", {"consult_id": consult["id"]})
        assert ack["status"] == "joined", ack
        joined.append(client)
    return consult, joined


async def test_the_host_mutes_an_expert_and_everyone_sees_it(
    live_server: LiveServer, clients: Connect
) -> None:
    consult, (host, zhao, sun) = await referral(live_server, clients)
    zhao_id = participant_id(consult, "ex-zhao")
    ack = await sun.call("mute_participant", {"participant_id": zhao_id, "source": "microphone"})
    assert ack["error"]["code"] == "forbidden"
    ack = await host.call("mute_participant", {"participant_id": zhao_id, "source": "microphone"})
    assert ack == {"ok": True}
    assert await zhao.next("muted_by_host") == {"source": "microphone", "by": "Dr. Wang Fang"}
    seen = await sun.next("participant_updated")
    assert seen["participant_id"] == zhao_id
    assert seen["muted"]["microphone"] is True
    ack = await host.call("mute_participant", {"participant_id": "nobody", "source": "camera"})
    assert ack["error"]["code"] == "participant_not_found"


async def test_a_removed_expert_is_disconnected_and_cannot_rejoin(
    live_server: LiveServer, clients: Connect
) -> None:
    consult, (host, zhao, sun) = await referral(live_server, clients)
    zhao_id = participant_id(consult, "ex-zhao")
    assert (await sun.call("remove_participant", {"participant_id": zhao_id}))["error"][
        "code"
    ] == "forbidden"
    assert await host.call("remove_participant", {"participant_id": zhao_id}) == {"ok": True}
    assert await zhao.next("removed") == {"by": "Dr. Wang Fang"}
    assert await sun.next("participant_left") == {"participant_id": zhao_id}
    for _ in range(100):
        if not zhao.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not zhao.client.connected
    again = await clients(live_server.url, live_server.token_of(consult, "ex-zhao"))
    ack = await again.call("join", {"consult_id": consult["id"]})
    assert ack["error"]["code"] == "participant_removed"
    host_id = participant_id(consult, "dr-wang")
    ack = await host.call("remove_participant", {"participant_id": host_id})
    assert ack["ok"] is False


async def test_chat_reaches_everyone_and_stays_in_the_timeline(
    live_server: LiveServer, clients: Connect
) -> None:
    consult, (host, zhao, sun) = await referral(live_server, clients)
    ack = await zhao.call("chat", {"text": "Please share the CT from March."})
    assert ack["ok"] and ack["message"]["name"] == "Prof. Zhao"
    for client in (host, zhao, sun):
        message = await client.next("chat_message")
        assert message["text"] == "Please share the CT from March."
        assert message["participant_id"] == participant_id(consult, "ex-zhao")
    assert (await sun.call("chat", {"text": ""}))["error"]["code"] == "invalid_payload"
    assert (await sun.call("chat", {"text": "x" * 2001}))["error"]["code"] == "invalid_payload"
    await sun.call("leave", {})
    ack = await sun.call("join", {"consult_id": consult["id"]})
    assert [m["text"] for m in ack["chat"]] == ["Please share the CT from March."]
    async with live_server.http.get(
        f"{live_server.url}/api/consults/{consult['id']}/timeline",
        headers=live_server.headers(live_server.token_of(consult, "dr-wang")),
    ) as response:
        events = (await response.json())["events"]
    chat = [e for e in events if e["kind"] == "chat"]
    assert chat[0]["detail"]["text"] == "Please share the CT from March."
    assert chat[0]["actor"]["name"] == "Prof. Zhao"


async def test_a_patient_in_the_lobby_cannot_chat(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    patient = await clients(live_server.url, join_token(consult, "pt-li"))
    await patient.call("join", {"consult_id": consult["id"]})
    assert (await patient.call("chat", {"text": "hello?"}))["error"]["code"] == "in_lobby"
