"""Hospitals as tenants: administrators manage their hospital's record; its secrets stay secret,
its identity provider is trusted for it alone, and its ICE settings reach the joining browsers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from config.settings import Settings
from rooms.identity import Identity, Role
from signaling.auth import TokenIssuer
from signaling.context import SERVICES
from tests.integration.live import HOSPITAL, LiveServer, join_token, serving
from tests.integration.test_jwks import IdentityProvider, provider  # noqa: F401 (fixture)
from tests.integration.test_recording_lifecycle import ATTESTED, join_visit
from tests.log_scan import register_secret

Connect = Callable[..., Any]

REGION = "yrd-region"
FHIR_TOKEN = "fhir-bearer-token-of-east-hospital-0f3a9c"
TURN_SECRET = "east-turn-static-auth-secret-7d1e"
EAST_IDP_SECRET = "east-idp-hs256-secret-of-more-than-32-bytes"
register_secret(FHIR_TOKEN, TURN_SECRET, EAST_IDP_SECRET)

NAMES = {"zh-CN": "华东医院", "en": "Huadong Hospital"}


@pytest.fixture
async def live(database_url: str, settings_factory: Callable[..., Settings]) -> Any:
    """The server of a region whose administrators use the hospital code ``yrd-region``."""
    async with serving(settings_factory(database_url=database_url, region_code=REGION)) as server:
        yield server


async def request(
    live: LiveServer, token: str | None, method: str, path: str, body: Any = None
) -> tuple[int, Any, str]:
    """Status, JSON body and raw text of a call."""
    headers = live.headers(token) if token else {}
    async with live.http.request(
        method, f"{live.url}{path}", json=body, headers=headers
    ) as response:
        text = await response.text()
        assert response.content_type == "application/json", text
        return response.status, await response.json(), text


def record(**changes: Any) -> dict[str, Any]:
    """A hospital record with a FHIR store reached by a bearer token, and its own TURN."""
    body: dict[str, Any] = {
        "display_names": NAMES,
        "record_store": {
            "kind": "fhir",
            "base_url": "https://fhir.huadong.example/r4",
            "auth": {"kind": "bearer", "token": FHIR_TOKEN},
        },
        "recording": {"retention_days": 90, "consent": "patient_or_attested"},
        "ice": {
            "stun_urls": ["stun:stun.huadong.example:3478"],
            "turn_urls": ["turn:turn.huadong.example:3478", "turns:turn.huadong.example:443"],
            "turn_secret": TURN_SECRET,
        },
    }
    return body | changes


async def test_a_hospital_admin_manages_its_record_and_others_are_refused(
    live: LiveServer,
) -> None:
    admin = live.token("admin-east", Role.ADMIN)
    status, written, _ = await request(live, admin, "PUT", f"/api/hospitals/{HOSPITAL}", record())
    assert status == 200, written
    status, shown, _ = await request(live, admin, "GET", f"/api/hospitals/{HOSPITAL}")
    assert status == 200
    assert shown["code"] == HOSPITAL and shown["display_names"] == NAMES
    assert shown["recording"] == {"retention_days": 90, "consent": "patient_or_attested"}

    region_admin = live.token("admin-region", Role.ADMIN, hospital=REGION)
    status, _, _ = await request(live, region_admin, "GET", f"/api/hospitals/{HOSPITAL}")
    assert status == 200
    west = record(display_names={"en": "West Hospital"}, record_store={"kind": "sql"})
    status, _, _ = await request(live, region_admin, "PUT", "/api/hospitals/h-west", west)
    assert status == 200
    status, listed, _ = await request(live, region_admin, "GET", "/api/hospitals")
    assert [entry["code"] for entry in listed] == [HOSPITAL, "h-west"]
    status, missing, _ = await request(live, region_admin, "GET", "/api/hospitals/h-none")
    assert (status, missing["error"]["code"]) == (404, "hospital_not_found")

    consult = await live.schedule_visit()
    refused = {
        "admin of another hospital": live.token("admin-west", Role.ADMIN, hospital="h-west"),
        "doctor of the hospital": live.token("dr-wang", Role.DOCTOR),
        "join link": join_token(consult, "pt-li"),
    }
    for who, token in refused.items():
        for method, body in (("GET", None), ("PUT", record())):
            status, answer, _ = await request(
                live, token, method, f"/api/hospitals/{HOSPITAL}", body
            )
            assert 401 <= status <= 403, (who, method, status)
            assert answer["error"]["code"] in ("admin_required", "identity_token_required"), who
        status, answer, _ = await request(live, token, "GET", "/api/hospitals")
        assert answer["error"]["code"] in ("admin_required", "identity_token_required"), who
    status, _, _ = await request(live, admin, "GET", "/api/hospitals")
    assert status == 403, "an admin of one hospital does not list the region's"

    status, audit, _ = await request(
        live, admin, "GET", f"/api/audit?hospital={HOSPITAL}&resource_type=hospital"
    )
    assert status == 200
    seen = {
        (entry["actor"]["sub"], entry["action"], entry["outcome"]) for entry in audit["entries"]
    }
    assert ("admin-east", "update", "allowed") in seen
    assert ("admin-east", "view", "allowed") in seen
    assert ("admin-region", "view", "allowed") in seen
    assert ("admin-west", "update", "refused:admin_required") in seen
    assert ("dr-wang", "view", "refused:admin_required") in seen


async def test_secrets_are_never_shown_and_a_put_without_them_keeps_them(
    live: LiveServer,
) -> None:
    admin = live.token("admin-east", Role.ADMIN)
    path = f"/api/hospitals/{HOSPITAL}"
    status, written, text = await request(live, admin, "PUT", path, record())
    assert status == 200
    assert FHIR_TOKEN not in text and TURN_SECRET not in text
    assert written["record_store"]["auth"] == {"kind": "bearer", "token_set": True}
    assert written["ice"]["turn_secret_set"] is True

    renamed = record(display_names={"zh-CN": "华东医院（新）", "en": "Huadong Hospital"})
    del renamed["record_store"]["auth"]["token"]
    del renamed["ice"]["turn_secret"]
    status, _, _ = await request(live, admin, "PUT", path, renamed)
    assert status == 200
    status, shown, text = await request(live, admin, "GET", path)
    assert FHIR_TOKEN not in text and TURN_SECRET not in text
    assert shown["display_names"]["zh-CN"] == "华东医院（新）"
    assert shown["record_store"]["auth"]["token_set"] is True

    # What the record store and the TURN credentials get, on explicit request only.
    directory = live.app[SERVICES].hospitals
    entry = await directory.get(HOSPITAL, with_secrets=True)
    assert entry is not None
    assert entry.profile.record_store.auth.token == FHIR_TOKEN  # type: ignore[union-attr]
    assert entry.profile.ice.turn_secret == TURN_SECRET
    plain = await directory.get(HOSPITAL)
    assert plain is not None and plain.profile.ice.turn_secret is None

    # Encrypted at rest: the database holds no plain secret.
    from rooms.models import Hospital

    async with live.app[SERVICES].database.sessions() as session:
        row = await session.get(Hospital, HOSPITAL)
    assert row is not None
    stored = repr(row.profile) + repr(row.secrets)
    assert FHIR_TOKEN not in stored and TURN_SECRET not in stored

    # Another way to reach the store drops the bearer token.
    smart_without_key = record(
        record_store={
            "kind": "fhir",
            "base_url": "https://fhir.huadong.example/r4",
            "auth": {
                "kind": "smart",
                "token_url": "https://auth.huadong.example/token",
                "client_id": "teleconsult",
            },
        }
    )
    status, answer, _ = await request(live, admin, "PUT", path, smart_without_key)
    assert (status, answer["error"]["code"]) == (422, "secret_required")
    status, _, _ = await request(live, admin, "PUT", path, record(record_store={"kind": "sql"}))
    assert status == 200
    entry = await directory.get(HOSPITAL, with_secrets=True)
    assert entry is not None and "fhir_bearer_token" not in entry.secrets_stored


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"display_names": {"fr": "Hôpital"}}, "invalid_payload"),
        ({"display_names": NAMES, "color": "blue"}, "invalid_payload"),
        (
            {"display_names": NAMES, "record_store": {"kind": "fhir", "base_url": "ftp://x"}},
            "invalid_payload",
        ),
        (
            {
                "display_names": NAMES,
                "record_store": {
                    "kind": "fhir",
                    "base_url": "https://fhir.example",
                    "auth": {"kind": "bearer"},
                },
            },
            "secret_required",
        ),
        ({"display_names": NAMES, "ice": {"turn_urls": ["http://turn"]}}, "invalid_payload"),
        ({"display_names": NAMES, "recording": {"retention_days": 0}}, "invalid_payload"),
        (
            {
                "display_names": NAMES,
                "trusted_issuers": [
                    {
                        "iss": "west-idp",
                        "algorithm": "HS256",
                        "secret": EAST_IDP_SECRET,
                        "hospitals": ["h-west"],
                    }
                ],
            },
            "invalid_payload",
        ),
        (
            {
                "display_names": NAMES,
                "trusted_issuers": [
                    {
                        "iss": "teleconsult",
                        "algorithm": "HS256",
                        "secret": EAST_IDP_SECRET,
                        "hospitals": [HOSPITAL],
                    }
                ],
            },
            "issuer_taken",
        ),
        ("not an object", "invalid_payload"),
    ],
)
async def test_a_wrong_record_is_refused_with_a_coded_json_error_and_nothing_is_stored(
    live: LiveServer, body: Any, code: str
) -> None:
    admin = live.token("admin-east", Role.ADMIN)
    status, answer, _ = await request(live, admin, "PUT", f"/api/hospitals/{HOSPITAL}", body)
    assert 400 <= status < 500
    assert answer["error"]["code"] == code, answer
    status, _, _ = await request(live, admin, "GET", f"/api/hospitals/{HOSPITAL}")
    assert status == 404


async def test_a_hospital_records_identity_provider_is_trusted_for_that_hospital_only(
    live: LiveServer,
) -> None:
    east_idp = TokenIssuer("HS256", EAST_IDP_SECRET, "east-idp", live.settings.jwt_audience)
    east_admin = east_idp.mint(Identity("admin-2", "Admin", Role.ADMIN, HOSPITAL), 600)
    posing_as_west = east_idp.mint(Identity("admin-3", "Admin", Role.ADMIN, "h-west"), 600)
    register_secret(east_admin, posing_as_west)
    path = f"/api/hospitals/{HOSPITAL}"

    status, answer, _ = await request(live, east_admin, "GET", path)
    assert (status, answer["error"]["code"]) == (401, "token_invalid"), "not trusted yet"

    issuer = {
        "iss": "east-idp",
        "algorithm": "HS256",
        "secret": EAST_IDP_SECRET,
        "hospitals": [HOSPITAL],
    }
    admin = live.token("admin-east", Role.ADMIN)
    status, written, text = await request(
        live, admin, "PUT", path, record(trusted_issuers=[issuer])
    )
    assert status == 200, written
    assert EAST_IDP_SECRET not in text
    status, shown, _ = await request(live, east_admin, "GET", path)
    assert status == 200
    assert shown["trusted_issuers"][0]["iss"] == "east-idp"
    assert shown["trusted_issuers"][0]["secret_set"] is True
    status, answer, _ = await request(live, posing_as_west, "GET", "/api/hospitals/h-west")
    assert (status, answer["error"]["code"]) == (401, "issuer_not_trusted")

    # The same issuer cannot be claimed by another hospital's record.
    region_admin = live.token("admin-region", Role.ADMIN, hospital=REGION)
    west_issuer = {**issuer, "hospitals": ["h-west"]}
    west = record(display_names={"en": "West"}, trusted_issuers=[west_issuer])
    status, answer, _ = await request(live, region_admin, "PUT", "/api/hospitals/h-west", west)
    assert (status, answer["error"]["code"]) == (409, "issuer_taken")


def expected_credential(secret: str, username: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


async def test_a_join_carries_turn_credentials_of_the_hospital_or_of_the_environment(
    database_url: str, settings_factory: Callable[..., Settings], clients: Connect
) -> None:
    env_secret = "environment-turn-secret-5b2c"
    register_secret(env_secret)
    settings = settings_factory(
        database_url=database_url,
        turn_urls=["turn:turn.region.example:3478", "turns:turn.region.example:443"],
        turn_secret=env_secret,
        turn_credential_seconds=3600,
    )
    async with serving(settings) as live:
        consult = await live.schedule_visit()
        doctor = await clients(live.url, live.token_of(consult, "dr-wang"))
        before = int(time.time())
        ack = await doctor.call("join", {"consult_id": consult["id"]})
        assert ack["ok"], ack
        [turn] = ack["ice_servers"]
        assert turn["urls"] == ["turns:turn.region.example:443", "turn:turn.region.example:3478"]
        expiry, participant = turn["username"].split(":")
        assert participant == ack["participant"]["participant_id"]
        assert before + 3600 <= int(expiry) <= int(time.time()) + 3600
        assert turn["credential"] == expected_credential(env_secret, turn["username"])
        assert ack["ice_transport_policy"] == "all"
        await doctor.close()

        admin = live.token("admin-east", Role.ADMIN)
        own = record(
            ice={
                "stun_urls": ["stun:stun.huadong.example:3478"],
                "turn_urls": ["turn:turn.huadong.example:3478"],
                "turn_secret": TURN_SECRET,
                "relay_only": True,
            }
        )
        status, _, _ = await request(live, admin, "PUT", f"/api/hospitals/{HOSPITAL}", own)
        assert status == 200
        patient = await clients(live.url, join_token(consult, "pt-li"))
        ack = await patient.call("join", {"consult_id": consult["id"]})
        assert ack["ok"], ack
        turn, stun = ack["ice_servers"]
        assert stun == {"urls": ["stun:stun.huadong.example:3478"]}
        assert turn["urls"] == ["turn:turn.huadong.example:3478"]
        assert turn["username"].endswith(":" + ack["participant"]["participant_id"])
        assert turn["credential"] == expected_credential(TURN_SECRET, turn["username"])
        assert ack["ice_transport_policy"] == "relay"


async def test_the_hospital_record_is_where_its_recording_retention_and_consent_policy_live(
    live: LiveServer, clients: Connect
) -> None:
    admin = live.token("admin-east", Role.ADMIN)
    path = f"/api/hospitals/{HOSPITAL}"
    policy_path = f"/api/recording-policies/{HOSPITAL}"
    status, _, _ = await request(live, admin, "PUT", path, record())
    assert status == 200
    status, policy, _ = await request(live, admin, "GET", policy_path)
    assert policy["retention_days"] == 90, "the record's retention is the policy's"
    status, _, _ = await request(
        live, admin, "PUT", policy_path, {"retention_days": 30, "rubric": ["Consent"]}
    )
    assert status == 200
    status, shown, _ = await request(live, admin, "GET", path)
    assert shown["recording"]["retention_days"] == 30, "the policy route writes the record"

    only_patient = record(recording={"consent": "patient_only"})
    del only_patient["record_store"]["auth"]["token"]
    status, _, _ = await request(live, admin, "PUT", path, only_patient)
    assert status == 200
    _, doctor, patient = await join_visit(live, clients)
    refused = await doctor.call("start_recording", ATTESTED)
    assert refused["error"]["code"] == "consent_required", refused
    assert (await patient.call("recording_consent", {"agree": True}))["ok"]
    started = await doctor.call("start_recording", {})
    assert started["ok"] and started["recording"], started
    assert (await doctor.call("stop_recording", {}))["ok"]


async def test_another_process_trusts_a_new_hospital_issuer_after_its_cache_time(
    database_url: str, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(database_url=database_url, hospital_cache_seconds=0.5)
    async with serving(settings) as first, serving(settings) as second:
        east_idp = TokenIssuer("HS256", EAST_IDP_SECRET, "east-idp", settings.jwt_audience)
        east_admin = east_idp.mint(Identity("admin-2", "Admin", Role.ADMIN, HOSPITAL), 600)
        register_secret(east_admin)
        path = f"/api/hospitals/{HOSPITAL}"
        status, _, _ = await request(second, east_admin, "GET", path)
        assert status == 401, "not trusted before the record names it"
        issuer = {"iss": "east-idp", "algorithm": "HS256", "secret": EAST_IDP_SECRET}
        admin = first.token("admin-east", Role.ADMIN)
        status, _, _ = await request(first, admin, "PUT", path, record(trusted_issuers=[issuer]))
        assert status == 200
        deadline = time.monotonic() + 15
        while (status := (await request(second, east_admin, "GET", path))[0]) != 200:
            assert status == 401 and time.monotonic() < deadline, status
            await asyncio.sleep(0.2)


async def test_a_hospital_issuer_with_a_jwks_endpoint_is_trusted_once_its_keys_are_fetched(
    live: LiveServer,
    provider: tuple[IdentityProvider, str],  # noqa: F811 (the fixture of test_jwks)
) -> None:
    idp, url = provider
    pem = idp.keys["k1"].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    east_idp = TokenIssuer(
        "RS256", pem.decode(), "https://idp.huadong.example", "teleconsult", key_id="k1"
    )
    east_admin = east_idp.mint(Identity("admin-2", "Admin", Role.ADMIN, HOSPITAL), 600)
    register_secret(east_admin)
    issuer = {"iss": "https://idp.huadong.example", "algorithm": "RS256", "jwks_url": url}
    admin = live.token("admin-east", Role.ADMIN)
    path = f"/api/hospitals/{HOSPITAL}"
    status, written, _ = await request(live, admin, "PUT", path, record(trusted_issuers=[issuer]))
    assert status == 200, written
    deadline = time.monotonic() + 15
    while (status := (await request(live, east_admin, "GET", path))[0]) != 200:
        assert status == 401 and time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert idp.fetches >= 1
