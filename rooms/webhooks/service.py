"""The webhooks of one server process, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from config.database import Database
from config.secrets import SecretBox
from config.settings import Settings
from outbox.queue import Outbox
from rooms.audit import AuditLog
from rooms.webhooks.deliverer import WebhookDeliverer
from rooms.webhooks.endpoints import WebhookEndpoints
from rooms.webhooks.events import WEBHOOK_KIND, WebhookEvents


@dataclass
class Webhooks:
    """The events (enqueued by rooms, recordings and clinical), the endpoints' administration,
    and the deliverer the outbox calls."""

    events: WebhookEvents
    endpoints: WebhookEndpoints
    deliverer: WebhookDeliverer

    async def close(self) -> None:
        """Close the deliverer's connections (after the outbox worker has stopped)."""
        await self.deliverer.close()


def build_webhooks(settings: Settings, database: Database, outbox: Outbox) -> Webhooks:
    """Build the webhooks and register their deliverer on the outbox."""
    box = SecretBox.from_settings(settings)
    deliverer = WebhookDeliverer(database, box, settings.webhook_timeout_seconds)
    outbox.register(WEBHOOK_KIND, deliverer)
    return Webhooks(
        events=WebhookEvents(outbox),
        endpoints=WebhookEndpoints(database, outbox, box, AuditLog(database), settings.region_code),
        deliverer=deliverer,
    )
