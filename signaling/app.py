"""The aiohttp application factory: services chosen once from the settings, routes, Socket.IO."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import socketio
from aiohttp import web

from clinical.services import build_clinical
from config.database import Database
from config.redis import connect_redis
from config.settings import Settings
from media.peer import MediaConfig
from media.server import MediaServer
from outbox.queue import Outbox
from outbox.worker import OutboxPolicy, OutboxWorker
from recordings.service import build_recordings
from rooms.registry import CLAIM_RENEWAL_SECONDS, LocalRegistry, RedisRegistry, RoomRegistry
from rooms.service import ConsultService
from signaling.api import (
    allergies,
    audit,
    clinical,
    consults,
    documents,
    health,
    notes,
    openapi,
    outbox,
    pages,
    pharmacy,
    prescriptions,
    recording_policies,
    recordings,
)
from signaling.auth import issuer_from_settings, verifier_from_settings
from signaling.clinical_events import forward_clinical_changes
from signaling.context import SERVICES, Services
from signaling.errors import problem_middleware
from signaling.events import LIVE_CONSULTS, ConsultSignaling
from signaling.metrics import watch_event_loop_lag
from signaling.recording_events import RecordingEvents

logger = logging.getLogger(__name__)


def build_services(settings: Settings) -> Services:
    """Pick every seam's implementation from the settings (SQLite or PostgreSQL, local or Redis)."""
    settings.prepare_data_dir()
    database = Database(settings.effective_database_url)
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None
    registry: RoomRegistry = RedisRegistry(redis_client) if redis_client else LocalRegistry()
    client_manager = (
        socketio.AsyncRedisManager(settings.redis_url, channel="teleconsult")
        if settings.redis_url
        else None
    )
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=client_manager,
        ping_interval=settings.socket_ping_interval_seconds,
        ping_timeout=settings.socket_ping_timeout_seconds,
    )
    media = MediaServer(
        MediaConfig(
            addresses=list(settings.media_addresses),
            ice_servers=[s.model_dump(exclude_none=True) for s in settings.ice_servers],
        )
    )
    consult_service = ConsultService(database)
    outbox = Outbox(database)
    return Services(
        settings=settings,
        database=database,
        consults=consult_service,
        registry=registry,
        media=media,
        verifier=verifier_from_settings(settings),
        issuer=issuer_from_settings(settings),
        sio=sio,
        clinical=build_clinical(settings, database, consult_service, outbox),
        recordings=build_recordings(settings, database, media, consult_service),
        outbox_worker=OutboxWorker(outbox, OutboxPolicy.from_settings(settings)),
        redis=redis_client,
    )


def create_app(settings: Settings) -> web.Application:
    """The whole server as one aiohttp application."""
    svc = build_services(settings)
    app = web.Application(
        middlewares=[pages.security_headers, problem_middleware], client_max_size=1024**2
    )
    app[SERVICES] = svc
    live = app[LIVE_CONSULTS] = ConsultSignaling(svc)
    svc.sio.attach(app)
    for resource in (
        health,
        openapi,
        consults,
        recordings,
        audit,
        recording_policies,
        notes,
        prescriptions,
        pharmacy,
        allergies,
        clinical,
        documents,
        outbox,
    ):
        resource.routes.add_to(app)
    app.add_routes(pages.routes)
    pages.add_static(app)
    RecordingEvents(app[LIVE_CONSULTS])
    forward_clinical_changes(svc)

    async def open_recordings(_: web.Application) -> None:
        await svc.recordings.open()

    async def close_recordings(_: web.Application) -> None:
        await svc.recordings.close()

    async def going_away(_: web.Application) -> None:
        await live.going_away()

    app.on_startup.append(open_recordings)
    app.on_shutdown.append(going_away)
    app.on_shutdown.append(close_recordings)

    async def renew_media_claims() -> None:
        """Keep naming this process as the media host of its consults, so claims don't expire."""
        while True:
            await asyncio.sleep(CLAIM_RENEWAL_SECONDS)
            for consult_id in svc.media.consult_ids:
                try:
                    await svc.registry.claim_media_node(consult_id, svc.node_id)
                except Exception:
                    logger.exception(
                        "renewing a media claim failed", extra={"consult_id": consult_id}
                    )

    async def start_background(_: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(renew_media_claims()),
            asyncio.create_task(watch_event_loop_lag()),
            asyncio.create_task(live.refresh_resume_tokens()),
        ]
        if svc.verifier.jwks is not None:
            tasks.append(asyncio.create_task(svc.verifier.jwks.keep_fresh()))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(start_background)

    async def start_outbox(_: web.Application) -> None:
        svc.outbox_worker.start()

    async def stop_outbox(_: web.Application) -> None:
        await svc.outbox_worker.stop()
        await svc.clinical.close()

    app.on_startup.append(start_outbox)
    app.on_cleanup.append(stop_outbox)

    async def close_services(_: web.Application) -> None:
        await svc.media.shutdown()
        await svc.registry.close()
        await svc.database.dispose()

    app.on_cleanup.append(close_services)
    return app
