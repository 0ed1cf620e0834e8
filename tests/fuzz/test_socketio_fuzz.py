"""10,000 malformed Socket.IO events, drawn by Hypothesis, over real connections of a live visit:
unknown events, wrong types, huge strings, nested junk, missing and unknown fields, and
well-formed payloads with ids that do not exist. Every one is acked with an error code, the
server stays up, and nothing stored changes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from config.database import Base, Database
from signaling.events import LIVE_CONSULTS
from tests.fuzz.conftest import ThreadedServer
from tests.integration.conftest import import_all_models
from tests.integration.live import (
    LiveServer,
    SignalingClient,
    connect,
    join_token,
    participant_id,
)

# Drawing 10,000 events takes Hypothesis about a millisecond each on an idle machine; allow
# for a loaded one.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

#: Hypothesis examples, each a batch of events that every connection sends at once: 167 × 20 × 3
#: is 10,020 events (small batches keep drawing cheap; drawing is most of the test's time).
BATCHES = 167
EVENTS_PER_BATCH = 20

#: Names Socket.IO itself reserves: a client may not emit them.
RESERVED = {"connect", "connect_error", "disconnect", "disconnecting", "message"}

#: Fields that name something in a consult: a well-formed payload gets an id that does not exist.
ID_FIELDS = ("consult_id", "participant_id")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JUNK = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=6,
)
#: Longer than any field allows (the longest, an SDP, takes 100,000 characters).
HUGE = st.integers(min_value=100_001, max_value=120_000).map(lambda n: "x" * n)
NEAR_MISSES = st.sampled_from(["", "camera", "answer", "publisher", "x" * 65, "y" * 2001])
#: One field in twenty is huge: enough of them, without sending gigabytes.
FIELD_VALUE = st.integers(0, 19).flatmap(lambda draw: HUGE if draw == 0 else (JUNK | NEAR_MISSES))


def accepted(schema: type[BaseModel], payload: Any) -> bool:
    """Whether the server's validation would let `payload` through (None counts as ``{}``)."""
    try:
        schema.model_validate({} if payload is None else payload)
    except ValidationError:
        return False
    return True


def malformed(name: str, schema: type[BaseModel]) -> st.SearchStrategy[tuple[str, Any]]:
    """Payloads of event `name` that its schema refuses: junk, wrong fields, missing fields."""
    fields = list(schema.model_fields)
    junk = JUNK.filter(lambda value: not isinstance(value, dict))
    wrong_fields = st.fixed_dictionaries(
        {},
        optional={
            **{field: FIELD_VALUE for field in fields},
            "unexpected": FIELD_VALUE,
            "__proto__": FIELD_VALUE,
        },
    )
    payloads = (junk | wrong_fields).filter(lambda payload: not accepted(schema, payload))
    return payloads.map(lambda payload: (name, payload))


def wrong_ids(name: str, schema: type[BaseModel]) -> st.SearchStrategy[tuple[str, Any]] | None:
    """Well-formed payloads of `name` naming a consult or participant that does not exist."""
    ids = [field for field in ID_FIELDS if field in schema.model_fields]
    if not ids:
        return None
    # Every other field of these events is a source, which "microphone" satisfies.
    others = {f: "microphone" for f in schema.model_fields if f not in ids}
    payload = st.fixed_dictionaries(
        {**{f: st.uuids().map(str) for f in ids}, **{f: st.just(v) for f, v in others.items()}}
    )
    return payload.filter(lambda p: accepted(schema, p)).map(lambda p: (name, p))


def unknown_events(known: set[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """Events nobody registered, with any payload."""
    names = st.text(min_size=1, max_size=40).filter(lambda n: n not in known | RESERVED)
    return st.tuples(names, JUNK)


def events(schemas: dict[str, type[BaseModel]]) -> st.SearchStrategy[tuple[str, Any]]:
    """Bad events of three families, drawn evenly: malformed payloads of every registered
    event, well-formed payloads with wrong ids, and unknown events."""
    registered = sorted(schemas.items())
    ids = [s for name, schema in registered if (s := wrong_ids(name, schema)) is not None]
    return st.one_of(
        st.one_of(*(malformed(name, schema) for name, schema in registered)),
        st.one_of(*ids),
        unknown_events(set(schemas)),
    )


async def stored_rows(live: LiveServer) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    import_all_models()
    database = Database(live.settings.effective_database_url)
    try:
        async with database.sessions() as session:
            snapshot = {}
            for table in Base.metadata.sorted_tables:
                rows = await session.execute(select(table))
                snapshot[table.name] = sorted(map(tuple, rows.all()), key=repr)
            return snapshot
    finally:
        await database.dispose()


async def visit_under_fire(live: LiveServer) -> dict[str, SignalingClient]:
    """A visit in progress: its doctor and admitted patient, and a connection that joined none."""
    consult = await live.schedule_visit()
    doctor = await connect(live.url, live.token_of(consult, "dr-wang"))
    assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
    patient = await connect(live.url, join_token(consult, "pt-li"))
    assert (await patient.call("join", {"consult_id": consult["id"]}))["ok"]
    assert (await doctor.call("admit", {"participant_id": participant_id(consult, "pt-li")}))["ok"]
    await patient.next("admitted")
    assert (await patient.call("recording_consent", {"agree": True}))["ok"]
    bystander = await connect(live.url, live.token("dr-chen", "doctor"))
    return {"doctor": doctor, "patient": patient, "bystander": bystander}


async def send(sender: SignalingClient, event: str, payload: Any) -> Any:
    # Straight through the Socket.IO client: a drawn "chat text" is junk, not a secret the log
    # scan should look for (a drawn "publisher" would then match every media log line).
    return await sender.client.call(event, payload, timeout=30)


def test_malformed_events_are_refused_with_a_code_and_change_nothing(
    threaded_server: ThreadedServer,
) -> None:
    live = threaded_server.live
    people = threaded_server.run(visit_under_fire(live))
    before = threaded_server.run(stored_rows(live))
    schemas = dict(live.app[LIVE_CONSULTS].client_events.schemas)
    assert {"join", "chat", "start_recording", "ice_candidate"} <= set(schemas)
    codes: Counter[str] = Counter()

    @settings(
        max_examples=BATCHES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(events(schemas), min_size=EVENTS_PER_BATCH, max_size=EVENTS_PER_BATCH))
    def refused(batch: list[tuple[str, Any]]) -> None:
        # Each event from each connection: joined host, admitted patient, joined nothing.
        sends = [(who, event, payload) for event, payload in batch for who in sorted(people)]

        async def fire() -> list[Any]:
            return await asyncio.gather(
                *(send(people[who], event, payload) for who, event, payload in sends)
            )

        acks = threaded_server.run(fire(), timeout=120)
        for (who, event, payload), ack in zip(sends, acks, strict=True):
            where = f"{who} sent {event!r} {repr(payload)[:200]}"
            assert isinstance(ack, dict) and ack.get("ok") is False, f"{where}: acked {ack!r}"
            assert isinstance(ack["error"].get("code"), str), f"{where}: acked {ack!r}"
            codes[ack["error"]["code"]] += 1

    refused()

    assert codes.total() >= 10_000
    # Every family reached the server: bad shapes, unknown events, and well-formed wrong ids.
    assert {"invalid_payload", "unknown_event", "participant_not_found"} <= set(codes), codes
    assert threaded_server.run(stored_rows(live)) == before, "nothing stored changed"

    async def still_serving() -> None:
        async with live.http.get(f"{live.url}/healthz") as response:
            assert response.status == 200
        for person in people.values():
            assert person.client.connected, "nobody was disconnected"
        ack = await people["doctor"].call("mute", {"source": "camera", "muted": True})
        assert ack["ok"], ack

    threaded_server.run(still_serving())
    for person in people.values():
        threaded_server.run(person.close())
