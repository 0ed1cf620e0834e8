"""A consult's pages hear of each change of its clinical record (``clinical_updated``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import LiveServer, SignalingClient
from tests.integration.test_outbox_fhir import call

Connect = Callable[..., Any]


async def joined(live: LiveServer, clients: Connect, consult: dict[str, Any]) -> SignalingClient:
    """The consult's doctor, joined over Socket.IO."""
    doctor = await clients(live.url, live.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    return doctor


async def test_the_doctor_signs_a_note_and_only_that_consult_hears_of_each_change(
    live_server: LiveServer, clients: Connect
) -> None:
    consult, elsewhere = await live_server.schedule_visit(), await live_server.schedule_visit()
    listener = await joined(live_server, clients, consult)
    bystander = await joined(live_server, clients, elsewhere)
    doctor = live_server.token_of(consult, "dr-wang")

    note = await call(live_server, doctor, "POST", f"/api/consults/{consult['id']}/notes", {})
    await call(live_server, doctor, "PATCH", f"/api/notes/{note['id']}", NOTE)
    await call(live_server, doctor, "POST", f"/api/notes/{note['id']}/sign")
    amendment = await call(
        live_server, doctor, "POST", f"/api/notes/{note['id']}/amendments", {"reason": "Typo"}
    )

    def change(document_id: str, what: str) -> dict[str, str]:
        return {"consult_id": consult["id"], "document": "note", "id": document_id, "change": what}

    heard = [await listener.next("clinical_updated") for _ in range(5)]
    # The signed note also reaches the hospital's record store, whenever the outbox gets to it:
    # that arrives in its own place among the edits (the amendment is still a draft).
    assert [e for e in heard if e["change"] == "delivered"] == [change(note["id"], "delivered")]
    assert [e for e in heard if e["change"] != "delivered"] == [
        change(note["id"], "created"),
        change(note["id"], "updated"),
        change(note["id"], "signed"),
        change(amendment["id"], "amended"),
    ]
    # The other consult's first event is the first its participant hears: nothing came before.
    other_doctor = live_server.token_of(elsewhere, "dr-wang")
    other = await call(
        live_server, other_doctor, "POST", f"/api/consults/{elsewhere['id']}/notes", {}
    )
    assert await bystander.next("clinical_updated") == {
        "consult_id": elsewhere["id"],
        "document": "note",
        "id": other["id"],
        "change": "created",
    }


async def test_prescription_changes_and_the_pharmacists_review_reach_the_consult(
    live_server: LiveServer, clients: Connect
) -> None:
    consult = await live_server.schedule_visit()
    listener = await joined(live_server, clients, consult)
    doctor = live_server.token_of(consult, "dr-wang")
    pharmacist = live_server.token("ph-zhao", "pharmacist")

    rx = await call(
        live_server, doctor, "POST", f"/api/consults/{consult['id']}/prescriptions", {"items": []}
    )
    path = f"/api/prescriptions/{rx['id']}"
    await call(live_server, doctor, "PATCH", path, {"items": [item()]})
    await call(live_server, doctor, "POST", f"{path}/sign")
    await call(live_server, pharmacist, "POST", f"{path}/review", {"decision": "approve"})

    heard = [await listener.next("clinical_updated") for _ in range(6)]
    # The signed prescription and the review each reach the record store too.
    assert [(e["document"], e["id"], e["change"]) for e in heard if e["change"] != "delivered"] == [
        ("prescription", rx["id"], "created"),
        ("prescription", rx["id"], "updated"),
        ("prescription", rx["id"], "signed"),
        ("prescription", rx["id"], "reviewed"),
    ]
    delivered = [e for e in heard if e["change"] == "delivered"]
    assert [(e["document"], e["id"]) for e in delivered] == [("prescription", rx["id"])] * 2
    assert {e["consult_id"] for e in heard} == {consult["id"]}
