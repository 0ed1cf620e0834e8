"""The services one server process holds, built once from the settings and shared by the edge."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
import socketio
from aiohttp import web

from clinical.services import ClinicalServices
from config.database import Database
from config.settings import Settings
from media import MediaHost
from outbox.worker import OutboxWorker
from recordings.service import RecordingService
from rooms.hospitals import HospitalDirectory
from rooms.outbox_admin import OutboxAdmin
from rooms.registry import RoomRegistry
from rooms.service import ConsultService
from rooms.turn import IceDefaults
from rooms.webhooks.service import Webhooks
from signaling.auth import TokenIssuer, TokenVerifier
from signaling.cluster import ClusterNode
from signaling.supervisor import Supervisor


@dataclass
class Services:
    """Everything a request handler may need, chosen once at start-up (the seams)."""

    settings: Settings
    database: Database
    consults: ConsultService
    registry: RoomRegistry
    media: MediaHost
    verifier: TokenVerifier
    #: The hospitals' records (tenants), cached.
    hospitals: HospitalDirectory
    #: The environment's ICE servers and TURN secret: a hospital without its own uses them.
    ice_defaults: IceDefaults
    #: Mints identity tokens of the settings' issuer (the demo); None without a private key.
    issuer: TokenIssuer | None
    #: Mints this server's join links.
    join_links: TokenIssuer
    sio: socketio.AsyncServer
    clinical: ClinicalServices
    recordings: RecordingService
    outbox_worker: OutboxWorker
    #: The outbox as its admins see it (every kind).
    outbox_admin: OutboxAdmin
    webhooks: Webhooks
    #: This process as a node of the cluster (a cluster of one without Redis).
    cluster: ClusterNode
    redis: aioredis.Redis | None = None
    #: Runs the background jobs (outbox, renditions, retention, registry, JWKS), restarting them.
    supervisor: Supervisor = field(default_factory=Supervisor)

    @property
    def node_id(self) -> str:
        """This process's id in the cluster."""
        return self.cluster.node_id


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    """The services of the application serving ``request``."""
    return request.app[SERVICES]
