"""The access matrix: every declared REST route and every Socket.IO event, against every caller.

The routes come from the application's declarations (the table that makes /api/openapi.json) and
the events from its protocol registry, so a route or event added without a row here fails. Each
caller works in a world of its own (a visit with documents, a recording and a removed guest, and
another visit), so what one caller changes cannot decide another's answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import socketio

from config.settings import Settings
from media.recording.manifest import Manifest
from recordings.models import Recording
from recordings.policies import DEFAULT_RUBRIC
from rooms.identity import Identity, Role
from signaling.api.declare import OPERATIONS
from signaling.auth import TokenIssuer, join_link_issuer
from signaling.context import SERVICES
from signaling.events import LIVE_CONSULTS
from tests.integration.clinical_helpers import NOTE, item
from tests.integration.live import (
    HOSPITAL,
    NO_RATE_LIMITS,
    LiveServer,
    connect,
    join_token,
    participant_id,
    serving,
)

NORTH_SECRET = "north-idp-secret-of-more-than-32-bytes"

CALLERS = (
    "anonymous",
    "patient",  # the consult's patient, with their join link
    "other_patient",  # the patient of another consult, with their join link
    "doctor",  # the consult's doctor, with their identity token
    "colleague",  # a doctor of the same hospital, not in the consult
    "outsider",  # a doctor of another hospital
    "pharmacist",
    "reviewer",
    "admin",
    "other_link",  # the consult's doctor's join link of another consult (`teleconsult token`)
    "removed",  # a guest the host removed, with their join link
    "untrusted",  # the consult's doctor, asserted by an issuer trusted only for "north"
)
JOIN_LINKS = ("patient", "other_patient", "other_link", "removed")

Answer = str
"""``"200"``-like success statuses, ``"ok"`` for an acked event, or the refusal's code."""


def row(**answers: Answer) -> dict[str, Answer]:
    """One route's answers: what every bearer route answers a missing token, a join link
    (unless the row says otherwise) and an untrusted issuer, then the row's own answers."""
    base: dict[str, Answer] = {caller: "identity_token_required" for caller in JOIN_LINKS}
    base |= {"anonymous": "token_missing", "untrusted": "issuer_not_trusted"}
    base |= answers
    assert set(base) == set(CALLERS), f"a row names every caller: {set(CALLERS) - set(base)}"
    return base


def public(answer: Answer) -> dict[str, Answer]:
    """A route without a bearer token: the same answer for everyone."""
    return dict.fromkeys(CALLERS, answer)


def event(**answers: Answer) -> dict[str, Answer]:
    """One event's acks: a missing token and an untrusted issuer are refused at connect; who
    could not join gets ``not_joined``; then the row's own answers."""
    base: dict[str, Answer] = dict.fromkeys(CALLERS, "not_joined")
    base |= {"anonymous": "connect:token_missing", "untrusted": "connect:issuer_not_trusted"}
    return base | answers


#: Each REST route, by method and declared path: what each caller gets.
ROUTES: dict[tuple[str, str], dict[str, Answer]] = {
    ("GET", "/healthz"): public("200"),
    ("GET", "/readyz"): public("200"),
    ("GET", "/metrics"): public("200"),
    ("GET", "/api/openapi.json"): public("200"),
    ("POST", "/api/consults"): row(
        doctor="201",
        colleague="201",
        outsider="forbidden",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/consults/{consult_id}"): row(
        patient="200",
        other_patient="wrong_consult",
        doctor="200",
        colleague="consult_not_found",
        outsider="consult_not_found",
        pharmacist="consult_not_found",
        reviewer="consult_not_found",
        admin="200",
        other_link="wrong_consult",
        removed="participant_removed",
    ),
    ("POST", "/api/consults/{consult_id}/end"): row(
        doctor="200",
        colleague="consult_not_found",
        outsider="consult_not_found",
        pharmacist="consult_not_found",
        reviewer="consult_not_found",
        admin="200",
    ),
    ("GET", "/api/consults/{consult_id}/timeline"): row(
        patient="200",
        other_patient="wrong_consult",
        doctor="200",
        colleague="consult_not_found",
        outsider="consult_not_found",
        pharmacist="consult_not_found",
        reviewer="consult_not_found",
        admin="200",
        other_link="wrong_consult",
        removed="participant_removed",
    ),
    ("GET", "/api/recordings"): row(
        doctor="200",
        colleague="200",
        outsider="200",
        pharmacist="recording_forbidden",
        reviewer="200",
        admin="200",
    ),
    ("GET", "/api/recordings/{recording_id}"): row(
        doctor="200",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="200",
        admin="200",
    ),
    ("GET", "/api/recordings/{recording_id}/files/{name}"): row(
        patient="recording_forbidden",
        other_patient="recording_forbidden",
        doctor="recording_file_not_found",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="recording_file_not_found",
        admin="recording_file_not_found",
        other_link="recording_forbidden",
        removed="recording_forbidden",
    ),
    ("GET", "/api/recordings/{recording_id}/timeline"): row(
        doctor="200",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="200",
        admin="200",
    ),
    ("GET", "/api/recordings/{recording_id}/scores"): row(
        doctor="200",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="200",
        admin="200",
    ),
    ("POST", "/api/recordings/{recording_id}/scores"): row(
        doctor="review_forbidden",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="201",
        admin="201",
    ),
    ("GET", "/api/recordings/{recording_id}/comments"): row(
        doctor="200",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="200",
        admin="200",
    ),
    ("POST", "/api/recordings/{recording_id}/comments"): row(
        doctor="review_forbidden",
        colleague="recording_forbidden",
        outsider="recording_forbidden",
        pharmacist="recording_forbidden",
        reviewer="201",
        admin="201",
    ),
    ("GET", "/api/audit"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="200",
    ),
    ("GET", "/api/recording-policies/{hospital}"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="200",
    ),
    ("PUT", "/api/recording-policies/{hospital}"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="200",
    ),
    ("GET", "/api/hospitals"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="admin_required",  # of the hospital, not of the region
    ),
    ("GET", "/api/hospitals/{code}"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="hospital_not_found",  # asked before its own PUT writes the record
    ),
    ("PUT", "/api/hospitals/{code}"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="200",
    ),
    ("POST", "/api/recording-policies/{hospital}/retention"): row(
        doctor="admin_required",
        colleague="admin_required",
        outsider="admin_required",
        pharmacist="admin_required",
        reviewer="admin_required",
        admin="200",
    ),
    ("POST", "/api/consults/{consult_id}/notes"): row(
        doctor="201",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/notes/{note_id}"): row(
        doctor="200",
        colleague="note_not_found",
        outsider="note_not_found",
        pharmacist="note_not_found",
        reviewer="note_not_found",
        admin="note_not_found",
    ),
    ("PATCH", "/api/notes/{note_id}"): row(
        doctor="200",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("POST", "/api/notes/{note_id}/sign"): row(
        doctor="200",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("POST", "/api/notes/{note_id}/amendments"): row(
        doctor="201",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("POST", "/api/consults/{consult_id}/prescriptions"): row(
        doctor="201",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/prescriptions/{prescription_id}"): row(
        doctor="200",
        colleague="prescription_not_found",
        outsider="prescription_not_found",
        pharmacist="200",
        reviewer="prescription_not_found",
        admin="prescription_not_found",
    ),
    ("PATCH", "/api/prescriptions/{prescription_id}"): row(
        doctor="200",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("POST", "/api/prescriptions/{prescription_id}/sign"): row(
        doctor="200",
        colleague="forbidden",
        outsider="consult_not_found",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/pharmacy/queue"): row(
        doctor="forbidden",
        colleague="forbidden",
        outsider="forbidden",
        pharmacist="200",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("POST", "/api/prescriptions/{prescription_id}/review"): row(
        doctor="forbidden",
        colleague="prescription_not_found",
        outsider="prescription_not_found",
        pharmacist="200",
        reviewer="prescription_not_found",
        admin="prescription_not_found",
    ),
    ("PUT", "/api/patients/{patient_sub}/allergies"): row(
        doctor="200",
        colleague="200",
        outsider="200",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/patients/{patient_sub}/allergies"): row(
        doctor="200",
        colleague="200",
        outsider="200",
        pharmacist="200",
        reviewer="forbidden",
        admin="forbidden",
    ),
    ("GET", "/api/consults/{consult_id}/clinical"): row(
        doctor="200",
        colleague="consult_not_found",
        outsider="consult_not_found",
        pharmacist="consult_not_found",
        reviewer="consult_not_found",
        admin="200",
    ),
    ("GET", "/api/consults/{consult_id}/document"): row(
        doctor="200",
        colleague="note_not_found",
        outsider="note_not_found",
        pharmacist="note_not_found",
        reviewer="note_not_found",
        admin="note_not_found",
    ),
    ("GET", "/api/clinical/public-key"): public("200"),
    ("GET", "/api/cluster"): public("200"),
    ("GET", "/api/outbox"): row(
        doctor="forbidden",
        colleague="forbidden",
        outsider="forbidden",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="200",
    ),
    ("POST", "/api/outbox/{entry_id}/retry"): row(
        doctor="forbidden",
        colleague="forbidden",
        outsider="forbidden",
        pharmacist="forbidden",
        reviewer="forbidden",
        admin="outbox_entry_not_found",
    ),
    **{
        route: row(
            doctor="forbidden",
            colleague="forbidden",
            outsider="forbidden",
            pharmacist="forbidden",
            reviewer="forbidden",
            admin=admin,
        )
        for route, admin in (
            (("GET", "/api/hospitals/{code}/webhooks"), "200"),
            (("POST", "/api/hospitals/{code}/webhooks"), "201"),
            (
                ("PATCH", "/api/hospitals/{code}/webhooks/{endpoint_id}"),
                "webhook_endpoint_not_found",
            ),
            (
                ("DELETE", "/api/hospitals/{code}/webhooks/{endpoint_id}"),
                "webhook_endpoint_not_found",
            ),
            (
                ("POST", "/api/hospitals/{code}/webhooks/{endpoint_id}/rotate-secret"),
                "webhook_endpoint_not_found",
            ),
            (("GET", "/api/hospitals/{code}/webhooks/deliveries"), "200"),
            (
                ("POST", "/api/hospitals/{code}/webhooks/deliveries/{delivery_id}/replay"),
                "webhook_delivery_not_found",
            ),
        )
    },
}

#: Each Socket.IO event: the ack each caller gets after trying to join the consult.
EVENTS: dict[str, dict[str, Answer]] = {
    "join": event(
        patient="ok",
        other_patient="wrong_consult",
        doctor="ok",
        colleague="not_invited",
        outsider="not_invited",
        pharmacist="not_invited",
        reviewer="not_invited",
        admin="not_invited",
        other_link="wrong_consult",
        removed="participant_removed",
    ),
    # Who could not join presents a token that is no one's; who joined has a seat already.
    "resume": event(
        **dict.fromkeys(CALLERS[1:-1], "resume_refused")
        | {"patient": "already_joined", "doctor": "already_joined"}
    ),
    "admit": event(patient="forbidden", doctor="ok"),
    "publish": event(patient="in_lobby", doctor="ok"),
    "subscribe": event(patient="in_lobby", doctor="ok"),
    "subscriber_answer": event(),
    "ice_candidate": event(),
    "mute": event(patient="ok", doctor="ok"),
    "audio_only": event(patient="ok", doctor="ok"),
    "mute_participant": event(patient="forbidden"),
    "remove_participant": event(patient="forbidden"),
    "chat": event(patient="in_lobby", doctor="ok"),
    "recording_consent": event(patient="ok", doctor="forbidden"),
    "start_recording": event(patient="forbidden", doctor="ok"),
    "stop_recording": event(patient="forbidden", doctor="ok"),
    "leave": event(patient="ok", doctor="ok"),
    "end": event(patient="forbidden", doctor="ok"),
}


@dataclass
class World:
    """One caller's world: a visit with documents and a recording, and another visit."""

    consult: dict[str, Any]
    other: dict[str, Any]
    draft_note: str
    signed_note: str
    draft_prescription: str
    signed_prescription: str
    recording: str
    tokens: dict[str, str | None]
    patient: str

    def path(self, method: str, template: str) -> str:
        """The route's path with this world's ids in it."""
        writes_draft = method == "PATCH" or template.endswith("/sign")
        values = {
            "consult_id": self.consult["id"],
            "note_id": self.draft_note if writes_draft else self.signed_note,
            "prescription_id": self.draft_prescription
            if writes_draft
            else self.signed_prescription,
            "recording_id": self.recording,
            "name": "camera.webm",
            "entry_id": "1",
            "hospital": HOSPITAL,
            "code": HOSPITAL,
            "endpoint_id": "1",
            "delivery_id": "1",
            "patient_sub": self.patient,
        }
        return template.format(**values)


def body(method: str, template: str, world: World) -> Any:
    """A valid body for each route that takes one: a refusal is then about access."""
    if method == "GET":
        return None
    bodies: dict[str, Any] = {
        "/api/consults": {
            "kind": "visit",
            "hospital": HOSPITAL,
            "title": "Another visit",
            "scheduled_at": datetime.now(UTC).isoformat(),
            "host": {"sub": "dr-wang", "name": "Dr. Wang Fang", "role": "doctor"},
            "participants": [{"sub": "pt-li", "name": "Li Hua", "role": "patient"}],
        },
        "/api/consults/{consult_id}/notes": NOTE,
        "/api/notes/{note_id}": {"plan": "Review in one week."},
        "/api/notes/{note_id}/amendments": {"reason": "Plan corrected", "plan": "Review soon."},
        "/api/consults/{consult_id}/prescriptions": {"items": [item()]},
        "/api/prescriptions/{prescription_id}": {"items": [item()]},
        "/api/prescriptions/{prescription_id}/sign": {},
        "/api/prescriptions/{prescription_id}/review": {"decision": "approve"},
        "/api/patients/{patient_sub}/allergies": {"allergies": []},
        "/api/recording-policies/{hospital}": {"retention_days": 30, "rubric": ["Consent"]},
        "/api/recording-policies/{hospital}/retention": {},
        "/api/hospitals/{code}": {"display_names": {"zh-CN": "瑞金医院", "en": "Ruijin Hospital"}},
        # Port 9 (discard) on loopback: nothing answers; the deliveries fail in the background.
        "/api/hospitals/{code}/webhooks": {
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["consult.ended"],
        },
        "/api/hospitals/{code}/webhooks/{endpoint_id}": {"enabled": False},
        "/api/recordings/{recording_id}/scores": {"scores": dict.fromkeys(DEFAULT_RUBRIC, 5)},
        "/api/recordings/{recording_id}/comments": {"offset": 1.5, "text": "Good rapport."},
    }
    return bodies.get(template, {})


def event_payload(event: str, world: World) -> dict[str, Any]:
    """A valid payload of each event."""
    patient = participant_id(world.consult, world.patient)
    return {
        "join": {"consult_id": world.consult["id"]},
        # Not a resume token of anyone's: a joined connection is refused before it is read.
        "resume": {"consult_id": world.consult["id"], "resume_token": "not-a-resume-token"},
        "admit": {"participant_id": patient},
        "publish": {"type": "offer", "sdp": "v=0\r\n"},
        "subscriber_answer": {"type": "answer", "sdp": "v=0\r\n"},
        "ice_candidate": {"pc": "publisher", "candidate": ""},
        "mute": {"source": "microphone", "muted": True},
        "audio_only": {"enabled": True},
        "mute_participant": {"participant_id": patient, "source": "microphone"},
        "remove_participant": {"participant_id": patient},
        "chat": {"text": "Can you hear me?"},
        "recording_consent": {"agree": True},
        "start_recording": {"attested_consent": {"reason": "The patient agreed aloud"}},
    }.get(event, {})


@pytest.fixture
async def live(
    database_url: str, settings_factory: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[LiveServer]:
    """The server, trusting also north-idp, for the hospital "north" only."""
    issuers = tmp_path / "trusted-issuers.json"
    north = {"iss": "north-idp", "algorithm": "HS256", "secret": NORTH_SECRET}
    issuers.write_text(json.dumps({"issuers": [{**north, "hospitals": ["north"]}]}))
    async with serving(
        settings_factory(database_url=database_url, trusted_issuers=issuers, **NO_RATE_LIMITS)
    ) as server:
        yield server


async def call(live: LiveServer, token: str | None, method: str, path: str, json_body: Any) -> Any:
    headers = live.headers(token) if token else {}
    async with live.http.request(
        method, f"{live.url}{path}", json=json_body, headers=headers
    ) as response:
        return response.status, (await response.read())


def answer_of(status: int, content: bytes) -> Answer:
    if status < 400:
        return str(status)
    return str(json.loads(content)["error"]["code"])


async def ok(live: LiveServer, token: str, method: str, path: str, json_body: Any = None) -> Any:
    status, content = await call(live, token, method, path, json_body)
    assert status < 300, content
    return json.loads(content)


async def build_world(live: LiveServer, patient: str) -> World:
    """A visit of Dr. Wang with the patient and a guest the host removed; a note and a
    prescription each drafted and signed; a finished recording; and another visit."""
    guest = {"sub": "pt-guest", "name": "Guest", "role": "patient"}
    consult = await live.schedule_visit(
        participants=[{"sub": patient, "name": "Li Hua", "role": "patient"}, guest]
    )
    other = await live.schedule_visit(
        host={"sub": "dr-zhou", "name": "Dr. Zhou", "role": "doctor"},
        participants=[{"sub": "pt-chen", "name": "Chen Jie", "role": "patient"}],
    )
    cid = consult["id"]
    doctor = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
    host = await connect(live.url, doctor)
    removed = await connect(live.url, join_token(consult, "pt-guest"))
    try:
        assert (await host.call("join", {"consult_id": cid}))["ok"]
        assert (await removed.call("join", {"consult_id": cid}))["ok"]
        guest_id = participant_id(consult, "pt-guest")
        assert (await host.call("admit", {"participant_id": guest_id}))["ok"]
        assert (await host.call("remove_participant", {"participant_id": guest_id}))["ok"]
    finally:
        await host.close()
        await removed.close()
    draft_note = await ok(live, doctor, "POST", f"/api/consults/{cid}/notes", NOTE)
    signed_note = await ok(live, doctor, "POST", f"/api/consults/{cid}/notes", NOTE)
    await ok(live, doctor, "POST", f"/api/notes/{signed_note['id']}/sign")
    enalapril = {"items": [item("C09AA02", "Enalapril", strength="10 mg", frequency="BID")]}
    draft_rx = await ok(
        live, doctor, "POST", f"/api/consults/{cid}/prescriptions", {"items": [item()]}
    )
    signed_rx = await ok(live, doctor, "POST", f"/api/consults/{cid}/prescriptions", enalapril)
    await ok(live, doctor, "POST", f"/api/prescriptions/{signed_rx['id']}/sign", {})
    recording = await live.app[SERVICES].recordings.catalogue.create(
        Recording(
            consult_id=cid,
            hospital_id=HOSPITAL,
            doctor_sub="dr-wang",
            doctor_name="Dr. Wang Fang",
            kind="visit",
            title=consult["title"],
            started_at=datetime.now(UTC),
            started_by="dr-wang",
            status="complete",
        )
    )
    folder = live.settings.recordings_dir / recording.id
    folder.mkdir(parents=True)
    snapshot = {"id": cid, "kind": "visit", "hospital": HOSPITAL, "title": consult["title"]}
    Manifest(recording.id, snapshot, "complete", recording.started_at.isoformat()).save(folder)
    link_of_other = join_link_issuer(live.settings).mint(
        Identity("dr-wang", "Dr. Wang Fang", Role.DOCTOR, HOSPITAL, other["id"]), 600
    )
    north = TokenIssuer("HS256", NORTH_SECRET, "north-idp", live.settings.jwt_audience)
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "patient": join_token(consult, patient),
        "other_patient": join_token(other, "pt-chen"),
        "doctor": doctor,
        "colleague": live.token("dr-qian", Role.DOCTOR),
        "outsider": live.token("dr-sun", Role.DOCTOR, hospital="h-west"),
        "pharmacist": live.token("ph-zhao", Role.PHARMACIST),
        "reviewer": live.token("rv-he", Role.REVIEWER),
        "admin": live.token("admin-1", Role.ADMIN),
        "other_link": link_of_other,
        "removed": join_token(consult, "pt-guest"),
        "untrusted": north.mint(Identity("dr-wang", "Dr. Wang", Role.DOCTOR, HOSPITAL), 600),
    }
    return World(
        consult,
        other,
        draft_note["id"],
        signed_note["id"],
        draft_rx["id"],
        signed_rx["id"],
        recording.id,
        tokens,
        patient,
    )


async def event_answer(live: LiveServer, world: World, caller: str, event: str) -> Answer:
    """What ``caller`` gets for ``event``: connect, join the consult (unless the event is the
    join), send the event."""
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", refusals.append)
    token = world.tokens[caller]
    try:
        await client.connect(
            live.url,
            auth={"token": token} if token else None,
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        return f"connect:{refusals[0]['data']['code']}"
    try:
        if event != "join":
            await client.call("join", {"consult_id": world.consult["id"]}, timeout=10)
        ack = await client.call(event, event_payload(event, world), timeout=10)
        return "ok" if ack["ok"] else str(ack["error"]["code"])
    finally:
        await client.disconnect()


async def test_every_route_and_event_answers_every_caller_as_the_table_says(
    live: LiveServer,
) -> None:
    operations = [op for op in live.app[OPERATIONS]]
    events = live.app[LIVE_CONSULTS].client_events.names
    # Writes that change the world most go last: ending the consult, leaving it.
    events = sorted(events, key=lambda name: name in ("leave", "end"))
    observed_routes: dict[tuple[str, str], dict[str, Answer]] = {}
    observed_events: dict[str, dict[str, Answer]] = {}
    for caller in CALLERS:
        world = await build_world(live, f"pt-{caller}")
        token = world.tokens[caller]
        for event in events:
            observed_events.setdefault(event, {})[caller] = await event_answer(
                live, world, caller, event
            )
        world = await build_world(live, f"pt-{caller}-rest")
        token = world.tokens[caller]
        for op in operations:
            status, content = await call(
                live,
                token,
                op.method,
                world.path(op.method, op.path),
                body(op.method, op.path, world),
            )
            observed_routes.setdefault((op.method, op.path), {})[caller] = answer_of(
                status, content
            )
    assert set(observed_routes) == set(ROUTES), "every declared route has a row"
    assert set(observed_events) == set(EVENTS), "every event has a row"
    wrong = [
        f"{route} {caller}: expected {expected[caller]}, got {observed_routes[route][caller]}"
        for route, expected in ROUTES.items()
        for caller in CALLERS
        if observed_routes[route][caller] != expected[caller]
    ]
    wrong += [
        f"{event} {caller}: expected {expected[caller]}, got {observed_events[event][caller]}"
        for event, expected in EVENTS.items()
        for caller in CALLERS
        if observed_events[event][caller] != expected[caller]
    ]
    assert not wrong, "\n".join(wrong)
