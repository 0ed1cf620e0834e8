"""The Socket.IO protocol's helpers: event registration and acks, error codes, payloads, rooms.

docs/protocol.md is the contract these build; the event handlers live in
:mod:`signaling.events` and :mod:`signaling.recording_events`. Every client event is validated
with its schema and answered with ``{"ok": true, ...}`` or ``{"ok": false, "error": {code,
message}}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import socketio
from pydantic import BaseModel

from media import ParticipantSession
from rooms.errors import DomainError
from rooms.grants import NO_GRANTS, ConsultGrants
from rooms.identity import Identity
from rooms.registry import UNMUTED, Presence
from rooms.views import ConsultView, ParticipantView, TimelineEntry
from signaling.errors import ack_error
from signaling.limits import Limiter, Use, identity_key

# --- error codes of the live consult (docs/protocol.md, "Error codes") ---------------------------


class AlreadyJoined(DomainError):
    code, status = "already_joined", 409


class NotJoined(DomainError):
    code, status = "not_joined", 409


class InLobby(DomainError):
    code, status = "in_lobby", 409


class MediaOnOtherNode(DomainError):
    """The consult's media is on another node: the client joins there (a redirect, not a fault:
    no 5xx, no traceback in the log)."""

    code, status = "media_on_other_node", 409


class UnknownEvent(DomainError):
    code, status = "unknown_event", 400


# --- Socket.IO rooms --------------------------------------------------------------------------


def consult_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's joined participants."""
    return f"consult:{consult_id}"


def lobby_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's waiting participants."""
    return f"lobby:{consult_id}"


def hosts_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's hosts (they see the lobby)."""
    return f"hosts:{consult_id}"


# --- payloads (docs/protocol.md, "Shapes") ------------------------------------------------------

#: How many earlier chat messages a joining participant receives.
CHAT_HISTORY = 100


def participant_payload(view: ParticipantView, presence: Presence | None) -> dict[str, Any]:
    """The protocol's Participant: the invitation plus live presence."""
    if presence is not None:
        status, muted = presence.status, presence.muted
    else:
        status, muted = ("removed" if view.removed else "invited"), dict(UNMUTED)
    return {**view.as_dict(), "status": status, "muted": muted}


def participants_payload(
    consult: ConsultView, presence: Mapping[str, Presence]
) -> list[dict[str, Any]]:
    """Every participant of a consult, as the protocol's Participant."""
    return [participant_payload(p, presence.get(p.id)) for p in consult.participants]


def waiting_payload(consult: ConsultView, presence: Mapping[str, Presence]) -> list[dict[str, Any]]:
    """The protocol's lobby: the consult's participants waiting to be admitted."""
    return [
        participant_payload(p, presence[p.id])
        for p in consult.participants
        if p.id in presence and presence[p.id].status == "waiting"
    ]


def chat_payload(entry: TimelineEntry) -> dict[str, Any]:
    """The protocol's ChatMessage, from its timeline entry."""
    return {
        "participant_id": entry.detail.get("participant_id"),
        "name": entry.actor_name,
        "text": entry.detail.get("text", ""),
        "at": entry.at.isoformat(),
    }


# --- connections and their events -------------------------------------------------------------


@dataclass
class Connection:
    """One Socket.IO connection: who it is and where it stands in its consult."""

    identity: Identity
    #: The client's address (``signaling.addresses.client_address``), for the audit log.
    address: str | None = None
    consult_id: str | None = None
    participant: ParticipantView | None = None
    grants: ConsultGrants = NO_GRANTS
    waiting: bool = False
    media: ParticipantSession | None = None
    #: What this process last stored in the registry for it (asserted again periodically).
    presence: Presence | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Closes the connection when its token expires.
    expiry: asyncio.TimerHandle | None = None

    def joined(self) -> tuple[str, ParticipantView]:
        """The consult and participant of a joined connection.

        :raises NotJoined: before ``join``.
        """
        if self.consult_id is None or self.participant is None:
            raise NotJoined("Join a consult first")
        return self.consult_id, self.participant

    def leave_consult(self) -> None:
        """Forget the consult: the connection may join one again."""
        self.consult_id, self.participant, self.media = None, None, None
        self.grants, self.waiting, self.presence = NO_GRANTS, False, None


EventHandler = Callable[[str, Connection, Any], Awaitable[dict[str, Any] | None]]
"""Handles one client event as ``handler(sid, connection, payload)``; returns the ack's fields."""


class ClientEvents:
    """
    The client events a server answers: each counted, validated, run under its connection's
    lock, acked.

    Every event counts against the ``events`` limit of its identity, and an event registered
    with a limit of its own against that one too: per identity, or per connection for a limit
    counted in the process (see :mod:`signaling.limits`). An event nobody registered is answered
    with ``unknown_event``.

    :param sio: The Socket.IO server.
    :param connections: The authenticated connections, by Socket.IO session id.
    :param limiter: Counts the events.
    """

    def __init__(
        self, sio: socketio.AsyncServer, connections: Mapping[str, Connection], limiter: Limiter
    ) -> None:
        self._sio = sio
        self._connections = connections
        self._names: list[str] = []
        self._limiter = limiter
        #: Each registered event's payload schema, by name (the event table tests are built on).
        self.schemas: dict[str, type[BaseModel]] = {}
        sio.on("*", self._on_unknown)

    @property
    def names(self) -> list[str]:
        """The registered events' names, in the order they were registered."""
        return list(self._names)

    def register(
        self, name: str, schema: type[BaseModel], handler: EventHandler, limit: str | None = None
    ) -> None:
        """
        Handle the client event `name`: count, validate with `schema`, run `handler`, ack.

        The handler runs under the connection's lock and returns the ack's result fields (or
        None); a raised error becomes a coded ``ok: false`` ack.

        :param name: The event's name.
        :param schema: Its payload's schema.
        :param handler: Called as ``handler(sid, connection, payload)``.
        :param limit: The name of a limit of this event's own, besides ``events``.
        """
        own = self._limiter.limits[limit] if limit is not None else None

        async def on_event(sid: str, data: Any = None) -> dict[str, Any]:
            connection = self._connections.get(sid)
            try:
                if connection is None:
                    raise NotJoined("The connection is not authenticated")
                who = identity_key(connection.identity)
                uses: list[Use] = [("events", (who,))]
                if own is not None:
                    uses.append((own.name, (who if own.shared else sid,)))
                await self._limiter.hit_all(uses)
                payload = schema.model_validate({} if data is None else data)
                async with connection.lock:
                    result = await handler(sid, connection, payload)
            except Exception as exc:
                return ack_error(name, exc, sid=sid)
            return {"ok": True, **(result or {})}

        self.schemas[name] = schema
        self._sio.on(name, on_event)
        self._names.append(name)

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        connection = self._connections.get(sid)
        try:
            if connection is not None:
                await self._limiter.hit("events", identity_key(connection.identity))
            raise UnknownEvent(f"Unknown event {event!r}")
        except Exception as exc:
            return ack_error("unknown", exc, sid=sid, event=event[:64])
