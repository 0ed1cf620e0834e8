"""The aiohttp application factory: services chosen once from the settings, routes, Socket.IO."""

from __future__ import annotations

import logging
import os
import uuid

import socketio
from aiohttp import web

from clinical.services import build_clinical, hospital_store_lookup
from config.database import Database
from config.keys import record_signing_key
from config.redis import connect_redis, fanout_channel, redis_options
from config.secrets import SecretBox
from config.settings import Settings
from media.peer import MediaConfig
from media.server import MediaServer
from outbox.queue import Outbox
from outbox.worker import OutboxPolicy, OutboxWorker
from recordings.service import build_recordings
from rooms.hospitals import HospitalDirectory
from rooms.nodes import LocalNodes, NodeDirectory, RedisNodes
from rooms.outbox_admin import OutboxAdmin
from rooms.registry import LocalRegistry, RedisRegistry, RoomRegistry
from rooms.service import ConsultService
from rooms.turn import IceDefaults
from rooms.webhooks.service import build_webhooks
from signaling.api import (
    allergies,
    audit,
    clinical,
    cluster,
    consults,
    documents,
    health,
    hospitals,
    notes,
    openapi,
    outbox,
    pages,
    pharmacy,
    prescriptions,
    recording_policies,
    recordings,
    webhooks,
)
from signaling.api.declare import OPERATIONS
from signaling.auth import (
    HospitalIssuers,
    issuer_from_settings,
    join_link_issuer,
    verifier_from_settings,
)
from signaling.clinical_events import forward_clinical_changes
from signaling.cluster import ClusterNode
from signaling.context import SERVICES, Services
from signaling.errors import outage_tolerated, problem_middleware
from signaling.events import LIVE_CONSULTS, ConsultSignaling
from signaling.headers import security_headers
from signaling.leases import JobLease, once_per_cluster
from signaling.limits import (
    LIMITER,
    ROUTE_LIMITS,
    Limiter,
    limits_from_settings,
    rate_limit_middleware,
)
from signaling.metrics import watch_event_loop_lag
from signaling.origins import socket_origin_check
from signaling.recording_events import RecordingEvents
from signaling.workers import SiblingPolling, socket_server

logger = logging.getLogger(__name__)


def build_services(settings: Settings) -> Services:
    """Pick every seam's implementation from the settings (SQLite or PostgreSQL, local or Redis)."""
    # Everything the server writes (recordings, renditions, keys, the database) is health data
    # or a secret: readable by the server's user only, whichever library creates the file.
    os.umask(0o077)
    settings.prepare_data_dir()
    database = Database(settings.effective_database_url)
    redis_client = connect_redis(settings.redis_url) if settings.redis_url else None
    registry: RoomRegistry = RedisRegistry(redis_client) if redis_client else LocalRegistry()
    nodes: NodeDirectory = (
        RedisNodes(
            redis_client,
            dead_after_seconds=settings.node_dead_after_seconds,
            claim_ttl_seconds=max(1, round(3 * settings.node_dead_after_seconds)),
            trusted_origins=settings.trusted_origins(),
        )
        if redis_client
        else LocalNodes()
    )
    client_manager = (
        socketio.AsyncRedisManager(
            settings.redis_url,
            channel=fanout_channel(settings.redis_url),
            redis_options=redis_options(),
        )
        if settings.redis_url
        else None
    )
    sio = socket_server(
        settings,
        async_mode="aiohttp",
        client_manager=client_manager,
        ping_interval=settings.socket_ping_interval_seconds,
        ping_timeout=settings.socket_ping_timeout_seconds,
        cors_allowed_origins=socket_origin_check(settings),
    )
    media = MediaServer(
        MediaConfig(
            addresses=list(settings.media_addresses),
            ice_servers=[s.model_dump(exclude_none=True) for s in settings.ice_servers],
            packet_inlet=settings.media_packet_inlet,
            ports=settings.media_ports,
            voice_bitrate=settings.media_voice_bitrate,
        )
    )
    outbox = Outbox(database)
    verifier = verifier_from_settings(settings)
    directory = HospitalDirectory(
        database,
        SecretBox.from_settings(settings),
        settings.hospital_cache_seconds,
        reserved_issuers=verifier.issuer_names,
    )
    verifier.hospital_issuers = HospitalIssuers(
        directory, settings.token_leeway_seconds, settings.hospital_cache_seconds
    )
    webhook_service = build_webhooks(settings, database, outbox)
    consult_service = ConsultService(database, webhooks=webhook_service.events)
    recordings = build_recordings(settings, database, media, consult_service, directory)
    return Services(
        settings=settings,
        database=database,
        consults=consult_service,
        registry=registry,
        media=media,
        verifier=verifier,
        hospitals=directory,
        ice_defaults=IceDefaults(
            servers=[s.model_dump(exclude_none=True) for s in settings.ice_servers],
            turn_urls=list(settings.turn_urls),
            turn_secret=settings.turn_secret,
            credential_seconds=settings.turn_credential_seconds,
        ),
        issuer=issuer_from_settings(settings),
        join_links=join_link_issuer(settings),
        sio=sio,
        clinical=build_clinical(
            settings,
            database,
            consult_service,
            outbox,
            webhook_service.events,
            hospital_store_lookup(directory),
        ),
        recordings=recordings,
        outbox_worker=OutboxWorker(outbox, OutboxPolicy.from_settings(settings)),
        outbox_admin=OutboxAdmin(outbox),
        webhooks=webhook_service,
        cluster=ClusterNode(uuid.uuid4().hex, settings, nodes, media, recordings),
        redis=redis_client,
    )


def create_app(settings: Settings) -> web.Application:
    """The whole server as one aiohttp application."""
    svc = build_services(settings)
    # A worker of `serve --workers` first passes its siblings' long-polling requests on.
    siblings = SiblingPolling(settings) if settings.worker_port is not None else None
    app = web.Application(
        middlewares=[
            *([siblings.middleware] if siblings else []),
            security_headers,
            problem_middleware,
            rate_limit_middleware,
        ],
        client_max_size=1024**2,
    )
    if siblings is not None:
        app.on_cleanup.append(siblings.close)
    app[SERVICES] = svc
    app[LIMITER] = Limiter(limits_from_settings(settings), settings.redis_url)
    live = app[LIVE_CONSULTS] = ConsultSignaling(svc, app[LIMITER])
    svc.sio.attach(app)
    for resource in (
        health,
        cluster,
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
        hospitals,
        webhooks,
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

    async def record_clinical_key(_: web.Application) -> None:
        # Published as retired once another key signs: what this one signed stays verifiable.
        await record_signing_key(svc.database, svc.clinical.signer.public_key_pem())

    async def close_recordings(_: web.Application) -> None:
        await svc.recordings.close()

    async def going_away(_: web.Application) -> None:
        with outage_tolerated("node not withdrawn: it dies by its heartbeat"):
            await svc.cluster.leave()
        await live.going_away()

    app.on_startup.append(open_recordings)
    app.on_startup.append(record_clinical_key)
    app.on_shutdown.append(going_away)
    app.on_shutdown.append(close_recordings)

    supervisor = svc.supervisor
    supervisor.add("outbox", svc.outbox_worker.run)
    for name, job in svc.recordings.jobs().items():  # sweeps and files: one node of the cluster
        lease = (
            JobLease(svc.redis, name, svc.node_id, settings.job_lease_seconds)
            if svc.redis is not None
            else None
        )
        supervisor.add(name, once_per_cluster(job, lease))
    supervisor.add("node", svc.cluster.keep_announcing)
    supervisor.add("ended_elsewhere", svc.cluster.follow_ended)
    supervisor.add("presence", app[LIVE_CONSULTS].refresh_presence)
    supervisor.add("event_loop_lag", watch_event_loop_lag)
    if svc.verifier.hospital_issuers is not None:
        supervisor.add("hospital_issuers", svc.verifier.hospital_issuers.keep_fresh)
    for number, keys in enumerate(svc.verifier.jwks):
        supervisor.add(f"signing_keys_{number}" if number else "signing_keys", keys.keep_fresh)
    supervisor.add("socket_claims", app[LIVE_CONSULTS].keep_socket_claims)
    supervisor.add("resume_tokens", live.refresh_resume_tokens)

    async def start_jobs(_: web.Application) -> None:
        with outage_tolerated("node not announced yet: its heartbeat job retries"):
            await svc.cluster.announce()  # placeable before its first join arrives
        supervisor.start()

    async def stop_jobs(_: web.Application) -> None:
        await supervisor.stop()
        await svc.clinical.close()
        await svc.webhooks.close()

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
