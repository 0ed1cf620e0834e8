"""What a hospital's security reviewer checks at the edge: headers, file modes, the client's
address behind a proxy, audited reads of consults and chat, the background jobs' state."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from config.settings import Settings
from migrations.runner import upgrade
from rooms.identity import Role
from signaling.access_log import AccessLogger
from signaling.app import create_app
from signaling.auth import issuer_from_settings
from signaling.headers import CONTENT_SECURITY_POLICY
from tests.integration.live import (
    HOSPITAL,
    LiveServer,
    connect,
    join_token,
)
from tests.log_scan import register_secret

CHAT = "Blood pressure this morning was 158 over 96"


@asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The whole server, as ``teleconsult serve`` prepares it (data folder, migrated SQLite)."""
    from aiohttp import ClientSession

    settings.prepare_data_dir()
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    test_server = TestServer(create_app(settings), host="127.0.0.1", access_log_class=AccessLogger)
    await test_server.start_server()
    issuer = issuer_from_settings(settings)
    assert issuer is not None
    try:
        async with ClientSession() as http:
            yield LiveServer(str(test_server.make_url("")).rstrip("/"), settings, issuer, http)
    finally:
        await test_server.close()


async def audit_entries(
    live: LiveServer, resource_type: str, hospital: str = HOSPITAL
) -> list[dict[str, Any]]:
    """What the hospital's administrators read in its audit log, newest first."""
    admin = live.headers(live.token("admin-1", Role.ADMIN, hospital=hospital))
    url = f"{live.url}/api/audit?resource_type={resource_type}&hospital={hospital}"
    async with live.http.get(url, headers=admin) as response:
        assert response.status == 200
        entries: list[dict[str, Any]] = (await response.json())["entries"]
        return entries


def parsed(proxies: str) -> Any:
    """``TELECONSULT_TRUSTED_PROXIES`` as the settings read it."""
    return Settings.model_validate({"trusted_proxies": proxies}).trusted_proxies


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_health_data_answers_are_never_cached_and_pages_may_only_talk_to_their_origin(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    async with server(settings_factory(data_dir=tmp_path / "data")) as live:
        consult = await live.schedule_visit()
        doctor = live.headers(live.token("dr-wang", Role.DOCTOR))
        async with live.http.get(f"{live.url}/api/consults/{consult['id']}", headers=doctor) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert "connect-src 'self';" in r.headers["Content-Security-Policy"]
            assert "ws:" not in r.headers["Content-Security-Policy"]
            assert "camera=(self)" in r.headers["Permissions-Policy"]
            assert "Strict-Transport-Security" not in r.headers  # plain http: no HSTS
        async with live.http.get(f"{live.url}/api/consults/nope", headers=doctor) as refused:
            assert refused.status == 404
            assert refused.headers["Cache-Control"] == "no-store"
        async with live.http.get(f"{live.url}/join/{consult['id']}") as page:
            assert page.headers["Cache-Control"] == "no-store"
            assert "microphone=(self)" in page.headers["Permissions-Policy"]


async def test_hsts_when_the_public_url_is_https(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(data_dir=tmp_path / "data", public_url="https://tc.example.org")
    async with server(settings) as live, live.http.get(f"{live.url}/healthz") as response:
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_the_data_folder_keys_database_and_recordings_are_private_to_the_server(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = settings_factory(data_dir=data, jwt_secret=None)
    async with server(settings) as live:
        await live.schedule_visit()
        async with live.http.get(f"{live.url}/api/clinical/public-key") as response:
            assert response.status == 200  # the clinical signing key exists now
    assert mode(data) == 0o700
    assert mode(data / "recordings") == 0o700
    assert mode(data / "teleconsult.db") == 0o600
    assert mode(data / "jwt-secret") == 0o600
    assert mode(data / "clinical-signing-key.pem") == 0o600


async def test_the_client_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7, 10.0.0.5"}
    for proxies, expected in (
        ("", "127.0.0.1"),  # nobody trusted: the header is anyone's to write
        ("192.0.2.0/24", "127.0.0.1"),  # the peer is not the proxy named
        ("127.0.0.1, 10.0.0.0/8", "203.0.113.7"),  # both hops trusted: the client before them
        ("127.0.0.0/8", "10.0.0.5"),  # only the nearest proxy trusted
    ):
        settings = settings_factory(data_dir=tmp_path / f"data-{expected}-{len(proxies)}")
        settings = settings.model_copy(update={"trusted_proxies": parsed(proxies)})
        async with server(settings) as live:
            consult = await live.schedule_visit()
            doctor = live.headers(live.token("dr-wang", Role.DOCTOR))
            url = f"{live.url}/api/consults/{consult['id']}"
            async with live.http.get(url, headers={**doctor, **forwarded}) as response:
                assert response.status == 200
            [entry] = await audit_entries(live, "consult")
            assert entry["client_address"] == expected, proxies


async def test_reads_of_a_consult_its_timeline_and_its_chat_are_audited(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    register_secret(CHAT)
    async with server(settings_factory(data_dir=tmp_path / "data")) as live:
        consult = await live.schedule_visit()
        doctor = live.headers(live.token("dr-wang", Role.DOCTOR))
        stranger = live.headers(live.token("dr-zhao", Role.DOCTOR, hospital="h-west"))
        base = f"{live.url}/api/consults/{consult['id']}"
        for url, headers, status in (
            (base, doctor, 200),
            (f"{base}/timeline", doctor, 200),
            (base, stranger, 404),
        ):
            async with live.http.get(url, headers=headers) as response:
                assert response.status == status

        [allowed] = await audit_entries(live, "consult")
        assert allowed["actor"]["sub"] == "dr-wang" and allowed["outcome"] == "allowed"
        assert allowed["consult_id"] == consult["id"]
        [refused] = await audit_entries(live, "consult", hospital="h-west")
        assert refused["actor"] == {"sub": "dr-zhao", "role": "doctor", "hospital": "h-west"}
        assert refused["outcome"] == "refused:consult_not_found"
        [timeline] = await audit_entries(live, "timeline")
        assert timeline["consult_id"] == consult["id"] and timeline["action"] == "view"

        host = await connect(live.url, live.token("dr-wang", Role.DOCTOR))
        assert (await host.call("join", {"consult_id": consult["id"]}))["ok"]
        assert (await host.call("chat", {"text": CHAT}))["ok"]
        assert await audit_entries(live, "chat") == []  # nothing was read yet
        patient = await connect(live.url, join_token(consult, "pt-li"))
        try:
            joined = await patient.call("join", {"consult_id": consult["id"]})
            assert joined["ok"] and joined["status"] == "lobby" and joined["chat"]
            [chat_read] = await audit_entries(live, "chat")
            assert chat_read["actor"]["sub"] == "pt-li"
            assert chat_read["detail"] == {"messages": 1}
            assert chat_read["client_address"] == "127.0.0.1"
        finally:
            await patient.close()
            await host.close()


async def test_readiness_shows_each_background_job_running(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    async with server(settings_factory(data_dir=tmp_path / "data")) as live:
        async with live.http.get(f"{live.url}/readyz") as response:
            body = await response.json()
        assert response.status == 200
        assert set(body["jobs"]) >= {"outbox", "renditions", "retention", "presence"}
        assert {job["status"] for job in body["jobs"].values()} == {"running"}
        async with live.http.get(f"{live.url}/metrics") as response:
            metrics = await response.text()
        assert 'teleconsult_background_job_running{job="outbox"} 1.0' in metrics
