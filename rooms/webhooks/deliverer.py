"""The outbox's deliverer of webhooks: one signed HTTP POST per attempt (Standard Webhooks)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from config.database import Database
from config.secrets import SecretBox
from outbox.deliverer import Delivery
from rooms.models import utcnow
from rooms.webhooks.models import WebhookEndpoint

logger = logging.getLogger(__name__)


class EndpointRefused(Exception):
    """The endpoint answered with a status other than 2xx."""


class EndpointDisabled(Exception):
    """The endpoint is disabled: its entries wait (and may give up) until it is enabled again."""


def event_body(event: dict[str, Any]) -> bytes:
    """The request body of an event: the same bytes on every attempt."""
    return json.dumps(event, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class WebhookDeliverer:
    """POSTs an event to its endpoint with ``webhook-id``, ``webhook-timestamp`` and
    ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` under the
    endpoint's secret, read and decrypted at each attempt, so a rotated secret applies at once).

    Only a 2xx answer within the timeout acknowledges it. An endpoint deleted since the event was
    enqueued receives nothing: the entry is done.

    :param database: where the endpoints are.
    :param secrets: decrypts the endpoints' secrets.
    :param timeout_seconds: the longest an endpoint may take to answer one attempt.
    :param clock: the current UTC time (the ``webhook-timestamp`` of each attempt).
    """

    def __init__(
        self,
        database: Database,
        secrets: SecretBox,
        timeout_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._secrets = secrets
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, delivery: Delivery) -> None:
        """Send one attempt; return once the endpoint answered 2xx.

        :raises EndpointRefused: for any other status.
        :raises EndpointDisabled: while the endpoint is disabled.
        :raises aiohttp.ClientError, TimeoutError: when it could not be reached in time.
        """
        payload = delivery.payload
        async with self._database.sessions() as session:
            endpoint = await session.get(WebhookEndpoint, payload["endpoint_id"])
        if endpoint is None:
            logger.info(
                "webhook endpoint deleted; event not sent",
                extra={"event_id": payload["event_id"]},
            )
            return
        if not endpoint.enabled:
            raise EndpointDisabled("the endpoint is disabled")
        body = event_body(payload["event"])
        now = self._clock()
        signature = Webhook(self._secrets.decrypt(endpoint.secret_ciphertext)).sign(
            payload["event_id"], now, body
        )
        headers = {
            "content-type": "application/json",
            "webhook-id": payload["event_id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        async with self._client().post(endpoint.url, data=body, headers=headers) as response:
            if not 200 <= response.status < 300:
                raise EndpointRefused(f"HTTP {response.status}")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        """Close the HTTP connections (after the outbox worker has stopped)."""
        if self._session is not None:
            await self._session.close()
