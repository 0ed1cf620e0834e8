"""REST routes of a hospital's webhook endpoints, their delivery log and replays (its admins)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from rooms.identity import Identity
from rooms.webhooks.endpoints import (
    CreatedEndpoint,
    EndpointChange,
    WebhookEndpoints,
    delivery_as_dict,
    endpoint_as_dict,
)
from rooms.webhooks.events import EventType
from signaling.addresses import client_address
from signaling.api.declare import ApiRoutes
from signaling.context import services
from signaling.schemas import Strict

routes = ApiRoutes("webhooks")


def _url(value: AnyHttpUrl | None) -> str | None:
    return str(value) if value is not None else None


class WebhookEndpointIn(Strict):
    """A new endpoint: where to POST, which event types, a note for the admins."""

    url: AnyHttpUrl = Field(description="http(s) URL the events are POSTed to")
    event_types: list[EventType] = Field(min_length=1, max_length=len(EventType))
    description: str = Field(default="", max_length=200)

    @field_validator("url")
    @classmethod
    def _fits(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > 2048:
            raise ValueError("at most 2048 characters")
        return value


class WebhookEndpointChangeIn(Strict):
    """What changes of an endpoint; fields left out stay as they are."""

    url: AnyHttpUrl | None = None
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=len(EventType)
    )
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=200)

    @field_validator("url")
    @classmethod
    def _fits(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and len(str(value)) > 2048:
            raise ValueError("at most 2048 characters")
        return value


class WebhookEndpointOut(BaseModel):
    """An endpoint as its admins see it (never its secret)."""

    id: str
    hospital: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    created_at: str
    updated_at: str


class WebhookEndpointWithSecretOut(WebhookEndpointOut):
    """An endpoint just made, or whose secret was just rotated: the secret, shown this once."""

    secret: str = Field(description="whsec_…: verifies the webhook-signature; not shown again")


class WebhookDeliveryQuery(BaseModel):
    """Filters of the delivery log."""

    status: Literal["pending", "delivered", "failed"] | None = None


class WebhookDeliveryOut(BaseModel):
    """One event to one endpoint: its attempts and outcome (never the body)."""

    id: str
    event_id: str | None
    event_type: str | None
    endpoint_id: str | None
    consult_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str
    delivered_at: str | None


def _endpoints(request: web.Request) -> WebhookEndpoints:
    return services(request).webhooks.endpoints


def _with_secret(created: CreatedEndpoint) -> WebhookEndpointWithSecretOut:
    return WebhookEndpointWithSecretOut(**endpoint_as_dict(created.endpoint), secret=created.secret)


@routes.get(
    "/api/hospitals/{code}/webhooks/deliveries",
    query=WebhookDeliveryQuery,
    response=list[WebhookDeliveryOut],
    description="newest first",
    problems=(403,),
)
async def list_webhook_deliveries(
    request: web.Request, identity: Identity, code: str, query: WebhookDeliveryQuery
) -> list[WebhookDeliveryOut]:
    """The hospital's webhook deliveries, newest first (its administrators; audited)."""
    entries = await _endpoints(request).deliveries(
        identity, code, query.status, address=client_address(request)
    )
    return [WebhookDeliveryOut.model_validate(delivery_as_dict(entry)) for entry in entries]


@routes.post(
    "/api/hospitals/{code}/webhooks/deliveries/{delivery_id}/replay",
    response=WebhookDeliveryOut,
    description="the delivery, pending again: sent with the same webhook-id",
    problems=(403, 404, 409),
)
async def replay_webhook_delivery(
    request: web.Request, identity: Identity, code: str, delivery_id: str
) -> WebhookDeliveryOut:
    """Send a delivered or failed event again, with the same webhook-id (its administrators)."""
    entry = await _endpoints(request).replay(identity, code, delivery_id, client_address(request))
    return WebhookDeliveryOut.model_validate(delivery_as_dict(entry))


@routes.get(
    "/api/hospitals/{code}/webhooks",
    response=list[WebhookEndpointOut],
    problems=(403,),
)
async def list_webhook_endpoints(
    request: web.Request, identity: Identity, code: str
) -> list[WebhookEndpointOut]:
    """The hospital's webhook endpoints, without their secrets (its administrators; audited)."""
    endpoints = await _endpoints(request).list_endpoints(identity, code, client_address(request))
    return [WebhookEndpointOut.model_validate(endpoint_as_dict(e)) for e in endpoints]


@routes.post(
    "/api/hospitals/{code}/webhooks",
    body=WebhookEndpointIn,
    response=WebhookEndpointWithSecretOut,
    status=201,
    description="the endpoint and its secret, shown this once",
    problems=(403,),
)
async def create_webhook_endpoint(
    request: web.Request, identity: Identity, code: str, body: WebhookEndpointIn
) -> WebhookEndpointWithSecretOut:
    """Add a webhook endpoint; its signing secret is in this answer only (its administrators)."""
    created = await _endpoints(request).create(
        identity,
        code,
        str(body.url),
        body.event_types,
        body.description,
        client_address(request),
    )
    return _with_secret(created)


@routes.patch(
    "/api/hospitals/{code}/webhooks/{endpoint_id}",
    body=WebhookEndpointChangeIn,
    response=WebhookEndpointOut,
    problems=(403, 404),
)
async def update_webhook_endpoint(
    request: web.Request,
    identity: Identity,
    code: str,
    endpoint_id: str,
    body: WebhookEndpointChangeIn,
) -> WebhookEndpointOut:
    """Change an endpoint's URL, event types, description, or enable or disable it."""
    change = EndpointChange(
        url=_url(body.url),
        event_types=body.event_types,
        enabled=body.enabled,
        description=body.description,
    )
    endpoint = await _endpoints(request).update(
        identity, code, endpoint_id, change, client_address(request)
    )
    return WebhookEndpointOut.model_validate(endpoint_as_dict(endpoint))


@routes.delete(
    "/api/hospitals/{code}/webhooks/{endpoint_id}",
    response=WebhookEndpointOut,
    description="the endpoint deleted",
    problems=(403, 404),
)
async def delete_webhook_endpoint(
    request: web.Request, identity: Identity, code: str, endpoint_id: str
) -> WebhookEndpointOut:
    """Delete an endpoint and its pending deliveries (its administrators)."""
    endpoint = await _endpoints(request).delete(
        identity, code, endpoint_id, client_address(request)
    )
    return WebhookEndpointOut.model_validate(endpoint_as_dict(endpoint))


@routes.post(
    "/api/hospitals/{code}/webhooks/{endpoint_id}/rotate-secret",
    response=WebhookEndpointWithSecretOut,
    description="the endpoint and its new secret, shown this once",
    problems=(403, 404),
)
async def rotate_webhook_secret(
    request: web.Request, identity: Identity, code: str, endpoint_id: str
) -> WebhookEndpointWithSecretOut:
    """Give an endpoint a new signing secret, in this answer only; the old one signs no more."""
    created = await _endpoints(request).rotate_secret(
        identity, code, endpoint_id, client_address(request)
    )
    return _with_secret(created)
