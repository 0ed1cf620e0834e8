"""A hospital's webhook endpoints and their delivery log, as its administrators manage them.

Every call is authorised with :func:`rooms.identity.administers` and audited (refusals too).
A secret is shown once, when it is made (creation, rotation), and never again.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.database import Database
from config.secrets import SecretBox
from outbox.errors import EntryNotFailed, EntryNotFound
from outbox.models import PENDING, OutboxEntry
from outbox.queue import Outbox
from rooms.audit import AuditLog, AuditRecord
from rooms.errors import DomainError, Forbidden
from rooms.identity import Identity, administers
from rooms.models import utcnow
from rooms.webhooks.events import WEBHOOK_KIND
from rooms.webhooks.models import WebhookEndpoint


class WebhookEndpointNotFound(DomainError):
    code, status = "webhook_endpoint_not_found", 404


class WebhookDeliveryNotFound(DomainError):
    code, status = "webhook_delivery_not_found", 404


class DeliveryPending(DomainError):
    """A pending delivery is sent anyway: only a delivered or failed one is replayed."""

    code, status = "delivery_pending", 409


def new_secret() -> str:
    """A new signing secret in the Standard Webhooks form: ``whsec_`` and 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_as_dict(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secret."""
    return {
        "id": endpoint.id,
        "hospital": endpoint.hospital_id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
    }


def delivery_as_dict(entry: OutboxEntry) -> dict[str, Any]:
    """A webhook delivery as the log shows it: ids, type, attempts and outcome, never the body."""
    event = entry.payload.get("event", {})
    return {
        "id": entry.id,
        "event_id": entry.payload.get("event_id"),
        "event_type": event.get("type"),
        "endpoint_id": entry.payload.get("endpoint_id"),
        "consult_id": entry.consult_id,
        "status": entry.status,
        "attempts": entry.attempts,
        # "EndpointRefused: HTTP 500", "TimeoutError: ", …: the class, and the status it names.
        "last_error": entry.last_error,
        "created_at": entry.created_at.isoformat(),
        "next_attempt_at": entry.next_attempt_at.isoformat(),
        "delivered_at": entry.delivered_at.isoformat() if entry.delivered_at else None,
    }


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """What an administrator changes of an endpoint; None leaves a field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    enabled: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """An endpoint just made (or whose secret was just rotated), with its secret: shown once."""

    endpoint: WebhookEndpoint
    secret: str


class WebhookEndpoints:
    """The endpoints of each hospital and the log of their deliveries.

    :param database: where endpoints live.
    :param outbox: the outbox that holds the deliveries.
    :param box: encrypts the secrets.
    :param audit: the access audit log.
    :param region: the region's code (its admins administer every hospital).
    :param clock: the current UTC time.
    """

    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        box: SecretBox,
        audit: AuditLog,
        region: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._box = box
        self._audit = audit
        self._region = region
        self._clock = clock

    async def list_endpoints(
        self, caller: Identity, hospital: str, address: str | None = None
    ) -> list[WebhookEndpoint]:
        """The hospital's endpoints, oldest first."""
        await self._authorise(caller, hospital, "list", "webhook_endpoint", hospital, address)
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.hospital_id == hospital)
                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )
            endpoints = list(rows)
        await self._done(caller, hospital, "list", hospital, address)
        return endpoints

    async def create(
        self,
        caller: Identity,
        hospital: str,
        url: str,
        event_types: Sequence[str],
        description: str = "",
        address: str | None = None,
    ) -> CreatedEndpoint:
        """A new enabled endpoint with a new secret (returned this once)."""
        await self._authorise(caller, hospital, "create", "webhook_endpoint", hospital, address)
        secret = new_secret()
        now = self._clock()
        endpoint = WebhookEndpoint(
            hospital_id=hospital,
            url=url,
            secret_ciphertext=self._box.encrypt(secret),
            event_types=list(dict.fromkeys(event_types)),
            enabled=True,
            description=description,
            created_by=caller.sub,
            created_at=now,
            updated_at=now,
        )
        async with self._database.transaction() as session:
            session.add(endpoint)
        await self._done(caller, hospital, "create", endpoint.id, address)
        return CreatedEndpoint(endpoint, secret)

    async def update(
        self,
        caller: Identity,
        hospital: str,
        endpoint_id: str,
        change: EndpointChange,
        address: str | None = None,
    ) -> WebhookEndpoint:
        """Change an endpoint's URL, event types, description or whether it is enabled."""
        await self._authorise(caller, hospital, "update", "webhook_endpoint", endpoint_id, address)
        async with self._database.transaction() as session:
            endpoint = await self._endpoint(session, hospital, endpoint_id)
            if change.url is not None:
                endpoint.url = change.url
            if change.event_types is not None:
                endpoint.event_types = list(dict.fromkeys(change.event_types))
            if change.enabled is not None:
                endpoint.enabled = change.enabled
            if change.description is not None:
                endpoint.description = change.description
            endpoint.updated_at = self._clock()
        await self._done(caller, hospital, "update", endpoint_id, address)
        return endpoint

    async def delete(
        self, caller: Identity, hospital: str, endpoint_id: str, address: str | None = None
    ) -> WebhookEndpoint:
        """Delete an endpoint and its pending deliveries (its delivered and failed ones stay in
        the log; one being sent at this moment completes, or is dropped by the deliverer)."""
        await self._authorise(caller, hospital, "delete", "webhook_endpoint", endpoint_id, address)
        async with self._database.transaction() as session:
            endpoint = await self._endpoint(session, hospital, endpoint_id)
            await session.execute(
                delete(OutboxEntry).where(
                    OutboxEntry.kind == WEBHOOK_KIND,
                    OutboxEntry.hospital_id == hospital,
                    OutboxEntry.status == PENDING,
                    OutboxEntry.payload["endpoint_id"].as_string() == endpoint_id,
                )
            )
            await session.delete(endpoint)
        await self._done(caller, hospital, "delete", endpoint_id, address)
        return endpoint

    async def rotate_secret(
        self, caller: Identity, hospital: str, endpoint_id: str, address: str | None = None
    ) -> CreatedEndpoint:
        """A new secret for an endpoint (returned this once); the old one signs no more."""
        await self._authorise(
            caller, hospital, "rotate_secret", "webhook_endpoint", endpoint_id, address
        )
        secret = new_secret()
        async with self._database.transaction() as session:
            endpoint = await self._endpoint(session, hospital, endpoint_id)
            endpoint.secret_ciphertext = self._box.encrypt(secret)
            endpoint.updated_at = self._clock()
        await self._done(caller, hospital, "rotate_secret", endpoint_id, address)
        return CreatedEndpoint(endpoint, secret)

    async def deliveries(
        self,
        caller: Identity,
        hospital: str,
        status: str | None = None,
        limit: int = 200,
        address: str | None = None,
    ) -> list[OutboxEntry]:
        """The hospital's webhook deliveries, newest first."""
        await self._authorise(caller, hospital, "list", "webhook_delivery", hospital, address)
        entries = await self._outbox.entries(hospital, status, limit, kind=WEBHOOK_KIND)
        await self._done(caller, hospital, "list", hospital, address, "webhook_delivery")
        return entries

    async def replay(
        self, caller: Identity, hospital: str, delivery_id: str, address: str | None = None
    ) -> OutboxEntry:
        """Send a delivered or failed delivery again, with the same ``webhook-id``.

        :raises WebhookDeliveryNotFound: for an unknown delivery, or one of another hospital.
        :raises WebhookEndpointNotFound: when its endpoint has been deleted.
        :raises DeliveryPending: when it is still pending (it is being sent anyway).
        """
        await self._authorise(caller, hospital, "replay", "webhook_delivery", delivery_id, address)
        async with self._database.sessions() as session:
            found = await session.get(OutboxEntry, delivery_id)
            if found is not None and found.kind == WEBHOOK_KIND and found.hospital_id == hospital:
                endpoint_id = str(found.payload.get("endpoint_id"))
                if await session.get(WebhookEndpoint, endpoint_id) is None:
                    raise WebhookEndpointNotFound("The delivery's endpoint has been deleted")
        try:
            entry = await self._outbox.retry(
                delivery_id, hospital, kind=WEBHOOK_KIND, delivered_too=True
            )
        except EntryNotFound:
            raise WebhookDeliveryNotFound("No such webhook delivery") from None
        except EntryNotFailed:
            raise DeliveryPending("This delivery is still pending") from None
        await self._done(caller, hospital, "replay", delivery_id, address, "webhook_delivery")
        return entry

    async def _authorise(
        self,
        caller: Identity,
        hospital: str,
        action: str,
        resource_type: str,
        resource_id: str,
        address: str | None,
    ) -> None:
        """Refuse (and audit the refusal) unless the caller administers the hospital."""
        if administers(caller, hospital, self._region):
            return
        refusal = Forbidden("Only an administrator of this hospital manages its webhooks")
        await self._audit.record(
            caller,
            AuditRecord(
                action,
                resource_type,
                resource_id[:64],
                hospital_id=hospital,
                outcome=f"refused:{refusal.code}",
            ),
            address,
        )
        raise refusal

    async def _done(
        self,
        caller: Identity,
        hospital: str,
        action: str,
        resource_id: str,
        address: str | None,
        resource_type: str = "webhook_endpoint",
    ) -> None:
        """Audit an allowed access."""
        await self._audit.record(
            caller, AuditRecord(action, resource_type, resource_id, hospital_id=hospital), address
        )

    @staticmethod
    async def _endpoint(session: AsyncSession, hospital: str, endpoint_id: str) -> WebhookEndpoint:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.hospital_id != hospital:
            raise WebhookEndpointNotFound("No such webhook endpoint")
        return endpoint
