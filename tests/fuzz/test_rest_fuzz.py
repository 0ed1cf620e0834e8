"""Schemathesis against /api/openapi.json: every route, with every kind of caller, valid and
invalid requests. No answer is a 5xx, every refusal is a JSON problem with a code, and the server
still answers afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from rooms.identity import Role
from signaling.api.declare import OPERATIONS
from tests.fuzz.conftest import ThreadedServer
from tests.integration.live import HOSPITAL, LiveServer, connect, join_token

#: Requests per route: half valid for the schema, half not; each with a caller drawn from all.
EXAMPLES_PER_ROUTE = 24
#: The caller that sends whatever Authorization header Schemathesis generated (forged, empty).
GENERATED = "generated_authorization"

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def callers(live: LiveServer, consult: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The Authorization header of every kind of caller (none for the anonymous one)."""
    staff = {
        "doctor": live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang"),
        "pharmacist": live.token("ph-zhou", Role.PHARMACIST),
        "reviewer": live.token("rev-1", Role.REVIEWER),
        "admin": live.token("admin-1", Role.ADMIN),
    }
    headers = {role: live.headers(token) for role, token in staff.items()}
    headers["patient_join_link"] = live.headers(join_token(consult, "pt-li"))
    headers["anonymous"] = {}
    return headers


def as_caller(case: schemathesis.Case, caller: dict[str, str] | None) -> None:
    """Send `case` as `caller`: its Authorization header replaces the generated one."""
    if caller is None:
        return
    generated = case.headers or {}
    case.headers = {k: v for k, v in generated.items() if k.lower() != "authorization"} | caller


async def seed(live: LiveServer) -> tuple[dict[str, Any], dict[str, str]]:
    """A visit, a draft note and a (short, empty) recording of it: ids that reach past 404s."""
    consult = await live.schedule_visit()
    doctor_token = live.token("dr-wang", Role.DOCTOR, name="Dr. Wang Fang")
    async with live.http.post(
        f"{live.url}/api/consults/{consult['id']}/notes",
        json={"subjective": "Headache for three days"},
        headers=live.headers(doctor_token),
    ) as response:
        assert response.status == 201, await response.text()
        note = await response.json()
    doctor = await connect(live.url, join_token(consult, "dr-wang"))
    try:
        assert (await doctor.call("join", {"consult_id": consult["id"]}))["ok"]
        attested = {"attested_consent": {"reason": "Patient agreed aloud"}}
        started = await doctor.call("start_recording", attested)
        assert started["ok"], started
        assert (await doctor.call("stop_recording", {}))["ok"]
    finally:
        await doctor.close()
    known = {
        "consult_id": consult["id"],
        "recording_id": started["recording_id"],
        "hospital": HOSPITAL,
        "patient_sub": "pt-li",
        "name": "manifest.json",
        "note_id": note["id"],
    }
    return consult, known


def assert_coded_problem(case: schemathesis.Case, response: schemathesis.Response) -> None:
    """No 5xx; a refusal is ``{"error": {"code": ...}}`` in JSON."""
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"{where}: {content_type}"
    try:
        body = response.json()
    except json.JSONDecodeError:
        pytest.fail(f"{where}: not JSON: {response.text[:200]}")
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    assert isinstance(code, str) and code, f"{where}: no error code in {body!r}"[:500]


@pytest.mark.postgres
def test_every_route_answers_every_caller_without_a_server_error(
    threaded_server: ThreadedServer,
) -> None:
    live = threaded_server.live
    consult, known = threaded_server.run(seed(live))
    headers = callers(live, consult)
    schema = schemathesis.openapi.from_url(f"{live.url}/api/openapi.json")
    http = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the document lists every route"

    for operation in operations:
        ids = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
        cases = st.one_of(
            *(
                operation.as_strategy(mode, path_parameters=fixed)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for fixed in ({}, ids)
            )
        )

        @FUZZ_SETTINGS
        @given(case=cases, caller=st.sampled_from([*sorted(headers), GENERATED]))
        def answers(case: schemathesis.Case, caller: str) -> None:
            as_caller(case, headers.get(caller))
            response = case.call(base_url=live.url, session=http)
            assert_coded_problem(case, response)

        answers()

    health = http.get(f"{live.url}/healthz", timeout=10)
    assert health.status_code == 200, "the server still answers"
    assert http.get(f"{live.url}/api/openapi.json", timeout=10).status_code == 200


async def test_an_id_longer_than_any_stored_one_is_refused_with_a_code_on_every_route(
    live_server: LiveServer,
) -> None:
    """Found by the fuzzer: a 100-character id reached PostgreSQL (the audit of the refusal)."""
    admin = live_server.headers(live_server.token("admin-1", Role.ADMIN))
    routes = [op for op in live_server.app[OPERATIONS] if op.path_parameters]
    assert routes
    for operation in routes:
        path = operation.path
        for name in operation.path_parameters:
            path = path.replace(f"{{{name}}}", "x" * 100)
        async with live_server.http.request(
            operation.method, f"{live_server.url}{path}", headers=admin, json={}
        ) as response:
            body = await response.json()
        where = f"{operation.method} {operation.path}"
        assert response.status == 422, f"{where}: {response.status} {body}"
        assert body["error"]["code"] == "invalid_payload", where
