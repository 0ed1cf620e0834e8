"""Issue 12 as a whole: two hospitals, each with its own token issuer, FHIR store and webhook
endpoint, all named in its record by the region's administrator. A referral of hospital A with an
expert of hospital B writes to A's store and notifies A's endpoint only; a consult of B, B's only.
On SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from clinical.fhir_auth import BearerSpec
from config.settings import Settings
from rooms.identity import Identity, Role
from signaling.auth import TokenIssuer
from tests.integration.clinical_helpers import NOTE
from tests.integration.live import HOSPITAL, LiveServer, connect
from tests.integration.test_fhir_auth import (  # noqa: F401 (serve: fixture)
    GuardedFhir,
    serve,
    store_record,
)
from tests.integration.test_outbox_fhir import all_delivered, call, wait_for_outbox
from tests.integration.test_webhooks import Receiver, api, receiving, server, subscribe
from tests.log_scan import register_secret

WEST = "h-west"


class Hospital:
    """One hospital of the region: its issuer (HS256, its own secret), its bearer-guarded FHIR
    store and its webhook receiver."""

    def __init__(self, code: str, store: GuardedFhir, receiver: Receiver, audience: str) -> None:
        self.code = code
        self.store = store
        self.receiver = receiver
        self.issuer_secret = secrets.token_urlsafe(32)
        self.fhir_token = secrets.token_urlsafe(32)
        register_secret(self.issuer_secret, self.fhir_token)
        store.grant_static(self.fhir_token)
        self.iss = f"idp-{code}"
        self.issuer = TokenIssuer("HS256", self.issuer_secret, self.iss, audience)

    def token(self, sub: str, role: Role, hospital: str | None = None) -> str:
        """A token of this hospital's issuer (claiming ``hospital``, by default its own)."""
        token = self.issuer.mint(Identity(sub, sub, role, hospital or self.code), 600)
        register_secret(token)
        return token

    def record(self) -> dict[str, Any]:
        """Its record: its FHIR store with its bearer token, and its issuer trusted for it."""
        issuer = {
            "iss": self.iss,
            "algorithm": "HS256",
            "secret": self.issuer_secret,
            "hospitals": [self.code],
        }
        store = store_record(self.code, self.store, BearerSpec(self.fhir_token))
        return store | {"trusted_issuers": [issuer]}

    def note_resources(self, note_id: str) -> set[tuple[str, str]]:
        """Which of a signed note's Composition, Bundle and DocumentReference its store holds."""
        wanted = {
            ("Composition", f"note-{note_id}"),
            ("Bundle", f"doc-{note_id}"),
            ("DocumentReference", f"docref-{note_id}"),
        }
        return wanted & set(self.store.fhir.resources)


async def sign_note(live: LiveServer, token: str, consult_id: str) -> str:
    """The note written and signed by the holder of ``token``; its id."""
    note = await call(live, token, "POST", f"/api/consults/{consult_id}/notes", NOTE)
    await call(live, token, "POST", f"/api/notes/{note['id']}/sign")
    return str(note["id"])


async def test_two_hospitals_keep_their_issuers_stores_and_webhooks_apart(
    database_url: str,
    settings_factory: Callable[..., Settings],
    serve: Callable[[GuardedFhir], Awaitable[GuardedFhir]],  # noqa: F811
) -> None:
    east_store, west_store = await serve(GuardedFhir()), await serve(GuardedFhir())
    async with (
        receiving(Receiver()) as east_receiver,
        receiving(Receiver()) as west_receiver,
        server(database_url, settings_factory) as live,
    ):
        audience = live.settings.jwt_audience
        east = Hospital(HOSPITAL, east_store, east_receiver, audience)
        west = Hospital(WEST, west_store, west_receiver, audience)
        region_admin = live.token("admin-region", Role.ADMIN, hospital=live.settings.region_code)
        for hospital in (east, west):
            await call(
                live, region_admin, "PUT", f"/api/hospitals/{hospital.code}", hospital.record()
            )
            await subscribe(live, hospital.receiver, hospital=hospital.code)

        # East's issuer cannot speak for West.
        status, answer = await api(
            live, east.token("admin-e", Role.ADMIN, hospital=WEST), "GET", f"/api/hospitals/{WEST}"
        )
        assert (status, answer["error"]["code"]) == (401, "issuer_not_trusted")

        # A referral of East: East's doctor and West's expert join, the expert signs the note.
        referral = await live.schedule_visit(
            kind="referral",
            participants=[
                {"sub": "pt-li", "name": "Li Hua", "role": "patient"},
                {"sub": "ex-zhao", "name": "Prof. Zhao", "role": "expert", "hospital": WEST},
            ],
        )
        doctor_token = east.token("dr-wang", Role.DOCTOR)
        expert_token = west.token("ex-zhao", Role.EXPERT)
        doctor = await connect(live.url, doctor_token)
        expert = await connect(live.url, expert_token)
        for client in (doctor, expert):
            ack = await client.call("join", {"consult_id": referral["id"]})
            assert ack["ok"], ack
        referral_note = await sign_note(live, expert_token, referral["id"])
        await doctor.call("end", {})
        await expert.close()
        await doctor.close()

        # A consult of West, scheduled by West's coordinator; West's doctor signs its note.
        status, own = await api(
            live,
            west.token("coord-w", Role.COORDINATOR),
            "POST",
            "/api/consults",
            {
                "kind": "visit",
                "hospital": WEST,
                "title": "Visit at h-west",
                "scheduled_at": referral["scheduled_at"],
                "host": {"sub": "dr-li", "name": "Dr. Li", "role": "doctor"},
                "participants": [{"sub": "pt-wu", "name": "Wu Min", "role": "patient"}],
            },
        )
        assert status == 201, own
        west_note = await sign_note(live, west.token("dr-li", Role.DOCTOR), own["id"])

        await east_receiver.wait_for(
            lambda: (
                "note.signed" in east_receiver.of_consult(referral["id"])
                and "consult.ended" in east_receiver.of_consult(referral["id"])
            ),
            "the referral's events",
        )
        await west_receiver.wait_for(
            lambda: "note.signed" in west_receiver.of_consult(own["id"]), "West's consult's note"
        )
        await wait_for_outbox(live, all_delivered)

    assert east.note_resources(referral_note) == {
        ("Composition", f"note-{referral_note}"),
        ("Bundle", f"doc-{referral_note}"),
        ("DocumentReference", f"docref-{referral_note}"),
    }
    assert west.note_resources(west_note) == {
        ("Composition", f"note-{west_note}"),
        ("Bundle", f"doc-{west_note}"),
        ("DocumentReference", f"docref-{west_note}"),
    }
    assert east.note_resources(west_note) == set()
    assert west.note_resources(referral_note) == set()
    assert ("Encounter", f"enc-{referral['id']}") not in west_store.fhir.resources
    assert ("Encounter", f"enc-{own['id']}") not in east_store.fhir.resources
    assert east_store.unauthorized == west_store.unauthorized == 0

    assert east_receiver.rejected == west_receiver.rejected == 0
    assert {e["data"]["consult_id"] for e in east_receiver.events} == {referral["id"]}
    assert {e["data"]["consult_id"] for e in west_receiver.events} == {own["id"]}
    assert east_receiver.of_consult(referral["id"])[:2] == ["consult.scheduled", "consult.started"]
    assert west_receiver.of_consult(own["id"]) == ["consult.scheduled", "note.signed"]
