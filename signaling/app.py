"""The aiohttp application factory: services chosen once from the settings, routes, Socket.IO."""

from __future__ import annotations

import asyncio
import logging
import os

import socketio
from aiohttp import web

from clinical.record_store import StoreLookup
from clinical.services import build_clinical
from config.database import Database
from config.redis import connect_redis, redis_options
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
from signaling.api.declare import OPERATIONS
from signaling.auth import issuer_from_settings, join_link_issuer, verifier_from_settings
from signaling.clinical_events import forward_clinical_changes
from signaling.context import SERVICES, Services
from signaling.errors import problem_middleware
from signaling.events import LIVE_CONSULTS, ConsultSignaling
from signaling.headers import security_headers
from signaling.limits import (
    LIMITER,
    ROUTE_LIMITS,
    Limiter,
    limits_from_settings,
    rate_limit_middleware,
)
from signaling.metrics import watch_event_loop_lag
from signaling.recording_events import RecordingEvents

logger = logging.getLogger(__name__)


def build_services(settings: Settings, store_lookup: StoreLookup | None = None) -> Services:
    """Pick every seam's implementation from the settings (SQLite or PostgreSQL, local or Redis).

    :param store_lookup: a hospital's own record store settings; the env store for the others.
    """
    # Everything the server writes (recordings, renditions, keys, the database) is health data
    # or a secret: readable by the server's user only, whichever library creates the file.
    os.umask(0o077)
    settings.prepare_data_dir()
    database = Database(settings.effective_database_url)
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None
    registry: RoomRegistry = RedisRegistry(redis_client) if redis_client else LocalRegistry()
    client_manager = (
        socketio.AsyncRedisManager(
            settings.redis_url, channel="teleconsult", redis_options=redis_options()
        )
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
        join_links=join_link_issuer(settings),
        sio=sio,
        clinical=build_clinical(settings, database, consult_service, outbox, store_lookup),
        recordings=build_recordings(settings, database, media, consult_service),
        outbox_worker=OutboxWorker(outbox, OutboxPolicy.from_settings(settings)),
        redis=redis_client,
    )


def create_app(settings: Settings, store_lookup: StoreLookup | None = None) -> web.Application:
    """The whole server as one aiohttp application.

    :param store_lookup: a hospital's own record store settings; the env store for the others.
    """
    svc = build_services(settings, store_lookup)
    app = web.Application(
        middlewares=[security_headers, problem_middleware, rate_limit_middleware],
        client_max_size=1024**2,
    )
    app[SERVICES] = svc
    app[LIMITER] = Limiter(limits_from_settings(settings), settings.redis_url)
    live = app[LIVE_CONSULTS] = ConsultSignaling(svc, app[LIMITER])
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
    app[ROUTE_LIMITS] = {
        (operation.method, operation.path): app[LIMITER].limits[operation.rate_limit].name
        for operation in app[OPERATIONS]
        if operation.rate_limit is not None
    }
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
                await svc.registry.claim_media_node(consult_id, svc.node_id)

    supervisor = svc.supervisor
    supervisor.add("outbox", svc.outbox_worker.run)
    for name, job in svc.recordings.jobs().items():
        supervisor.add(name, job)
    supervisor.add("media_claims", renew_media_claims)
    supervisor.add("presence", app[LIVE_CONSULTS].refresh_presence)
    supervisor.add("event_loop_lag", watch_event_loop_lag)
    for number, keys in enumerate(svc.verifier.jwks):
        supervisor.add(f"signing_keys_{number}" if number else "signing_keys", keys.keep_fresh)
    supervisor.add("socket_claims", app[LIVE_CONSULTS].keep_socket_claims)
    supervisor.add("resume_tokens", live.refresh_resume_tokens)

    async def start_jobs(_: web.Application) -> None:
        supervisor.start()

    async def stop_jobs(_: web.Application) -> None:
        await supervisor.stop()
        await svc.clinical.close()

    app.on_startup.append(start_jobs)
    app.on_cleanup.append(stop_jobs)

    async def close_services(_: web.Application) -> None:
        await svc.media.shutdown()
        await svc.registry.close()
        await svc.database.dispose()

    app.on_cleanup.append(close_services)

    async def close_limiter(_: web.Application) -> None:
        await app[LIMITER].close()

    app.on_cleanup.append(close_limiter)
    return app
