"""Webhook events: what happened, enqueued for each subscribed endpoint in the caller's transaction.

One outbox entry per (event, endpoint), so that a failing endpoint holds back no other. Entries
of one consult to one endpoint share an ordering key: the outbox delivers them in the order they
were enqueued, a later one waiting until the earlier one is delivered.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outbox.models import OutboxEntry
from outbox.queue import Outbox
from rooms.models import utcnow
from rooms.webhooks.models import WebhookEndpoint

logger = logging.getLogger(__name__)

#: The outbox kind of webhook deliveries.
WEBHOOK_KIND = "webhook"


class EventType(StrEnum):
    """The types of webhook event an endpoint may subscribe to."""

    CONSULT_SCHEDULED = "consult.scheduled"
    CONSULT_STARTED = "consult.started"
    CONSULT_ENDED = "consult.ended"
    PARTICIPANT_JOINED = "participant.joined"
    PARTICIPANT_LEFT = "participant.left"
    LOBBY_WAITING = "lobby.waiting"
    RECORDING_READY = "recording.ready"
    NOTE_SIGNED = "note.signed"
    PRESCRIPTION_SIGNED = "prescription.signed"
    PRESCRIPTION_REVIEWED = "prescription.reviewed"
    DELIVERY_FAILED = "delivery.failed"


#: Timeline entries written through ``ConsultService.note`` that are webhook events: a
#: departure (the timeline entry is the only record of it) and a recording catalogued.
TIMELINE_EVENTS: Mapping[str, EventType] = {
    "left": EventType.PARTICIPANT_LEFT,
    "disconnected": EventType.PARTICIPANT_LEFT,
    "recording_stopped": EventType.RECORDING_READY,
    "recording_recovered": EventType.RECORDING_READY,
}

#: The namespace of the ordering keys (``document_id`` of the outbox entries).
_ORDER_NAMESPACE = uuid.UUID("6f1d2c55-3a53-4a7e-9a57-0b3f1f4e2c11")


def new_event_id() -> str:
    """A new event id: the ``webhook-id`` of every attempt of the event, replays included."""
    return f"msg_{uuid.uuid4().hex}"


def ordering_key(endpoint_id: str, stream: str) -> str:
    """The outbox ordering key of one stream (a consult, or one report) to one endpoint."""
    return str(uuid.uuid5(_ORDER_NAMESPACE, f"{endpoint_id}/{stream}"))


class WebhookEvents:
    """Enqueues webhook events for the endpoints of the hospital they belong to.

    Events belong to the consult's hospital: a referral's events go to the referring hospital's
    endpoints only, its remote expert's hospital included among the participants but not told.

    :param outbox: the outbox (the deliverer of :data:`WEBHOOK_KIND` is registered on it).
    :param clock: the current UTC time (the events' ``timestamp``).
    """

    def __init__(self, outbox: Outbox, clock: Callable[[], datetime] = utcnow) -> None:
        self._outbox = outbox
        self._clock = clock
        outbox.on_gave_up(self._report_gave_up)

    def notify(self) -> None:
        """Wake the outbox worker (after the transaction that emitted has committed)."""
        self._outbox.notify()

    async def emit(
        self,
        session: AsyncSession,
        event_type: str,
        *,
        hospital: str,
        consult_id: str,
        data: Mapping[str, Any],
    ) -> int:
        """Enqueue ``event_type`` for every enabled endpoint of ``hospital`` subscribed to it.

        Call it in the transaction that makes the change, and ``Outbox.notify`` after it commits.

        :param data: ids, states and timestamps, never clinical text, patients' names or tokens.
        :return: how many endpoints it was enqueued for.
        """
        return await self._emit(
            session, event_type, hospital=hospital, consult_id=consult_id, data=data, stream=None
        )

    async def _emit(
        self,
        session: AsyncSession,
        event_type: str,
        *,
        hospital: str,
        consult_id: str,
        data: Mapping[str, Any],
        stream: str | None,
    ) -> int:
        checked = EventType(event_type)  # ValueError for an unknown type
        # Read once per transaction: a change that is several events (a consult started by its
        # host's arrival) enqueues them all for the same endpoints.
        transaction, cached = session.sync_session.get_transaction(), ("webhooks", hospital)
        read_in, endpoints = session.info.get(cached, (None, []))
        if transaction is None or read_in is not transaction:
            endpoints = list(
                await session.scalars(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.hospital_id == hospital,
                        WebhookEndpoint.enabled.is_(True),
                    )
                )
            )
            session.info[cached] = (transaction, endpoints)
        event_id = new_event_id()
        event = {
            "type": checked.value,
            "timestamp": self._clock().isoformat(),
            "data": {"hospital": hospital, "consult_id": consult_id, **data},
        }
        count = 0
        for endpoint in endpoints:
            if checked not in endpoint.event_types:
                continue
            self._outbox.enqueue(
                session,
                kind=WEBHOOK_KIND,
                idempotency_key=f"{event_id}:{endpoint.id}",
                document_id=ordering_key(endpoint.id, stream or consult_id),
                consult_id=consult_id,
                hospital_id=hospital,
                payload={"endpoint_id": endpoint.id, "event_id": event_id, "event": event},
            )
            count += 1
        return count

    async def _report_gave_up(self, session: AsyncSession, entry: OutboxEntry) -> None:
        """An outbox entry failed its last attempt: ``delivery.failed`` to the hospital.

        A failed report of a failure is not reported again (no loop). Each report is a stream
        of its own: the failed entry, which blocks its consult's later events, does not block it.
        """
        data: dict[str, Any] = {
            "delivery_id": entry.id,
            "kind": entry.kind,
            "attempts": entry.attempts,
            "error": (entry.last_error or "").split(":", 1)[0] or None,
        }
        if entry.kind == WEBHOOK_KIND:
            event = entry.payload.get("event", {})
            if event.get("type") == EventType.DELIVERY_FAILED:
                return
            data |= {
                "endpoint_id": entry.payload.get("endpoint_id"),
                "event_id": entry.payload.get("event_id"),
                "event_type": event.get("type"),
            }
        else:
            data["document_id"] = entry.document_id
        count = await self._emit(
            session,
            EventType.DELIVERY_FAILED,
            hospital=entry.hospital_id,
            consult_id=entry.consult_id,
            data=data,
            stream=f"{EventType.DELIVERY_FAILED.value}/{entry.id}",
        )
        logger.info(
            "delivery failure reported",
            extra={"entry_id": entry.id, "kind": entry.kind, "endpoints": count},
        )
