"""Socket.IO events: join, lobby and admit, offer/answer/ICE, mute, leave and end.

Every event is validated with its schema and authorised with the caller's grants; the ack is
``{"ok": true, ...}`` or ``{"ok": false, "error": {code, message}}`` (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web
from pydantic import BaseModel

from media import ParticipantSession, Source
from rooms.errors import DomainError, Forbidden, InvalidPayload, ParticipantNotFound, TokenMissing
from rooms.grants import NO_GRANTS, ConsultGrants
from rooms.identity import Identity
from rooms.registry import UNMUTED, Presence
from rooms.views import ConsultView, ParticipantView, TimelineEntry
from signaling.context import Services
from signaling.errors import ack_error, as_domain_error, problem_body
from signaling.metrics import JOIN_SECONDS, SOCKET_CONNECTIONS
from signaling.schemas import (
    ChatIn,
    EmptyIn,
    IceCandidateIn,
    JoinIn,
    ModerateMuteIn,
    MuteIn,
    ParticipantRef,
    PublishIn,
    SessionDescriptionIn,
)

logger = logging.getLogger(__name__)


class AlreadyJoined(DomainError):
    code, status = "already_joined", 409


class NotJoined(DomainError):
    code, status = "not_joined", 409


class InLobby(DomainError):
    code, status = "in_lobby", 409


class MediaOnOtherNode(DomainError):
    code, status = "media_on_other_node", 503


class UnknownEvent(DomainError):
    code, status = "unknown_event", 400


def consult_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's joined participants."""
    return f"consult:{consult_id}"


def lobby_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's waiting participants."""
    return f"lobby:{consult_id}"


def hosts_room(consult_id: str) -> str:
    """The Socket.IO room of a consult's hosts (they see the lobby)."""
    return f"hosts:{consult_id}"


def participant_payload(view: ParticipantView, presence: Presence | None) -> dict[str, Any]:
    """The protocol's Participant: the invitation plus live presence."""
    if presence is not None:
        status, muted = presence.status, presence.muted
    else:
        status, muted = ("removed" if view.removed else "invited"), dict(UNMUTED)
    return {**view.as_dict(), "status": status, "muted": muted}


def waiting_payload(consult: ConsultView, presence: dict[str, Presence]) -> list[dict[str, Any]]:
    """The protocol's lobby: the consult's participants waiting to be admitted."""
    return [
        participant_payload(p, presence[p.id])
        for p in consult.participants
        if p.id in presence and presence[p.id].status == "waiting"
    ]


#: How many earlier chat messages a joining participant receives.
CHAT_HISTORY = 100


def chat_payload(entry: TimelineEntry) -> dict[str, Any]:
    """The protocol's ChatMessage, from its timeline entry."""
    return {
        "participant_id": entry.detail.get("participant_id"),
        "name": entry.actor_name,
        "text": entry.detail.get("text", ""),
        "at": entry.at.isoformat(),
    }


@dataclass
class Connection:
    """One Socket.IO connection: who it is and where it stands in its consult."""

    identity: Identity
    consult_id: str | None = None
    participant: ParticipantView | None = None
    grants: ConsultGrants = NO_GRANTS
    waiting: bool = False
    media: ParticipantSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def joined(self) -> tuple[str, ParticipantView]:
        """The consult and participant of a joined connection.

        :raises NotJoined: before ``join``.
        """
        if self.consult_id is None or self.participant is None:
            raise NotJoined("Join a consult first")
        return self.consult_id, self.participant


EventHandler = Callable[[str, Connection, Any], Awaitable[dict[str, Any] | None]]


class ConsultSignaling:
    """The Socket.IO side of live consults, bound to one ``socketio.AsyncServer``.

    :param services: the process's services (database, registry, media, verifier).
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.sio: socketio.AsyncServer = services.sio
        self._connections: dict[str, Connection] = {}
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_unknown)
        self.register("join", JoinIn, self._join)
        self.register("admit", ParticipantRef, self._admit)
        self.register("publish", PublishIn, self._publish)
        self.register("subscriber_answer", SessionDescriptionIn, self._subscriber_answer)
        self.register("ice_candidate", IceCandidateIn, self._ice_candidate)
        self.register("mute", MuteIn, self._mute)
        self.register("leave", EmptyIn, self._leave)
        self.register("end", EmptyIn, self._end)
        self.register("mute_participant", ModerateMuteIn, self._mute_participant)
        self.register("remove_participant", ParticipantRef, self._remove_participant)
        self.register("chat", ChatIn, self._chat)

    # --- plumbing ---------------------------------------------------------------------------

    def register(self, name: str, schema: type[BaseModel], handler: EventHandler) -> None:
        """Handle the client event ``name``: validate with ``schema``, run ``handler``, ack.

        The handler runs under the connection's lock as ``handler(sid, connection, payload)`` and
        returns the ack's result fields (or None); a raised error becomes a coded ``ok: false`` ack.
        """

        async def on_event(sid: str, data: Any = None) -> dict[str, Any]:
            connection = self._connections.get(sid)
            try:
                if connection is None:
                    raise NotJoined("The connection is not authenticated")
                payload = schema.model_validate({} if data is None else data)
                async with connection.lock:
                    result = await handler(sid, connection, payload)
            except Exception as exc:
                return ack_error(name, exc, sid=sid)
            return {"ok": True, **(result or {})}

        self.sio.on(name, on_event)

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        error = UnknownEvent(f"Unknown event {event!r}")
        return ack_error("unknown", error, sid=sid, event=event[:64])

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str) or not token:
                raise TokenMissing("A token is needed to connect")
            identity = self.services.verifier.verify(token)
        except Exception as exc:
            error = as_domain_error(exc)
            logger.warning("connection refused", extra={"code": error.code})
            raise socketio.exceptions.ConnectionRefusedError(
                error.code, problem_body(error)["error"]
            ) from exc
        self._connections[sid] = Connection(identity)
        SOCKET_CONNECTIONS.inc()

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self._connections.pop(sid, None)
        if connection is not None:
            SOCKET_CONNECTIONS.dec()
        if connection is not None and connection.consult_id is not None:
            async with connection.lock:
                await self._depart(sid, connection, "disconnected")

    async def _participants(self, consult: ConsultView) -> list[dict[str, Any]]:
        presence = await self.services.registry.presence(consult.id)
        return [participant_payload(p, presence.get(p.id)) for p in consult.participants]

    async def _broadcast_lobby(
        self, consult: ConsultView, presence: dict[str, Presence] | None = None
    ) -> None:
        if presence is None:
            presence = await self.services.registry.presence(consult.id)
        waiting = waiting_payload(consult, presence)
        await self.sio.emit("lobby", {"waiting": waiting}, room=hosts_room(consult.id))

    async def _open_media(self, sid: str, connection: Connection) -> ParticipantSession:
        consult_id, participant = connection.joined()
        if connection.media is None:

            async def send(event: str, payload: dict[str, Any]) -> None:
                await self.sio.emit(event, payload, to=sid)

            room = self.services.media.room(consult_id)
            connection.media = await room.join(participant.id, send)
        return connection.media

    # --- events -----------------------------------------------------------------------------

    async def _join(self, sid: str, connection: Connection, payload: JoinIn) -> dict[str, Any]:
        if connection.consult_id is not None:
            raise AlreadyJoined("This connection already joined a consult")
        with JOIN_SECONDS.time():
            return await self._arrive(sid, connection, payload.consult_id)

    async def _arrive(self, sid: str, connection: Connection, consult_id: str) -> dict[str, Any]:
        """The join's work: a fixed number of database and registry round trips.

        On a server busy forwarding media every round trip waits for the event loop, so a join
        reads what it needs once (the consult, presence, the last chat messages) and no more.
        """
        services = self.services
        arrival = await services.consults.arrive(connection.identity, consult_id)
        consult, participant = arrival.consult, arrival.participant
        owner = await services.registry.claim_media_node(consult.id, services.node_id)
        if owner != services.node_id:
            raise MediaOnOtherNode("This consult's media is served by another server process")
        registry = services.registry
        previous = (await registry.presence(consult.id)).get(participant.id)
        if previous is not None and previous.sid != sid:
            # A participant holds one connection: a rejoin (new tab, reconnect) replaces the old.
            await self.sio.disconnect(previous.sid)
        connection.consult_id, connection.participant = consult.id, participant
        connection.grants, connection.waiting = arrival.grants, arrival.waits_in_lobby
        mine = Presence("waiting" if connection.waiting else "joined", sid)
        await registry.set_presence(consult.id, participant.id, mine)
        presence = await registry.presence(consult.id)
        if connection.waiting:
            await self.sio.enter_room(sid, lobby_room(consult.id))
            await self._broadcast_lobby(consult, presence)
        else:
            await self._enter_consult(sid, consult, participant, mine)
            if arrival.grants.admit:
                await self.sio.enter_room(sid, hosts_room(consult.id))
        chat = await services.consults.chat_history(consult.id, CHAT_HISTORY)
        return {
            "status": "lobby" if connection.waiting else "joined",
            "participant": participant_payload(participant, mine),
            "consult": consult.as_dict(),
            "grants": arrival.grants.as_dict(),
            "participants": [
                participant_payload(p, presence.get(p.id)) for p in consult.participants
            ],
            "waiting": waiting_payload(consult, presence) if arrival.grants.admit else [],
            "chat": [chat_payload(entry) for entry in chat],
            "ice_servers": [s.model_dump(exclude_none=True) for s in services.settings.ice_servers],
            "recording": await services.recordings.state(consult.id),
        }

    async def _enter_consult(
        self, sid: str, consult: ConsultView, participant: ParticipantView, presence: Presence
    ) -> None:
        await self.sio.enter_room(sid, consult_room(consult.id))
        await self.sio.emit(
            "participant_joined",
            participant_payload(participant, presence),
            room=consult_room(consult.id),
            skip_sid=sid,
        )

    async def _admit(self, sid: str, connection: Connection, payload: ParticipantRef) -> None:
        consult_id, _ = connection.joined()
        if not connection.grants.admit:
            raise Forbidden("Only the host may admit participants")
        services = self.services
        admitted = await services.consults.admit(
            connection.identity, consult_id, payload.participant_id
        )
        consult = await services.consults.get(connection.identity, consult_id)
        presence = (await services.registry.presence(consult_id)).get(admitted.id)
        if presence is not None and presence.status == "waiting":
            joined = Presence("joined", presence.sid, presence.muted)
            await services.registry.set_presence(consult_id, admitted.id, joined)
            await self.sio.leave_room(presence.sid, lobby_room(consult_id))
            await self._enter_consult(presence.sid, consult, admitted, joined)
            await self.sio.emit(
                "admitted",
                {"consult": consult.as_dict(), "participants": await self._participants(consult)},
                to=presence.sid,
            )
        await self._broadcast_lobby(consult)
        return None

    async def _admitted_now(self, connection: Connection) -> None:
        """Let a waiting connection through once a host admitted it (possibly on another node)."""
        consult_id, participant = connection.joined()
        if not connection.waiting:
            return
        consult = await self.services.consults.get(connection.identity, consult_id)
        current = consult.participant(participant.id)
        if current is None or not current.admitted:
            raise InLobby("Wait until the host admits you")
        connection.participant, connection.waiting = current, False

    async def _publish(
        self, sid: str, connection: Connection, payload: PublishIn
    ) -> dict[str, Any]:
        await self._admitted_now(connection)
        if payload.type != "offer":
            raise InvalidPayload("publish takes an offer")
        if not connection.grants.publish:
            raise Forbidden("You may not publish media in this consult")
        media = await self._open_media(sid, connection)
        answer = await media.handle_publisher_offer(payload.sdp, payload.sources)
        return {"type": "answer", "sdp": answer}

    async def _subscriber_answer(
        self, sid: str, connection: Connection, payload: SessionDescriptionIn
    ) -> None:
        connection.joined()
        if payload.type != "answer":
            raise InvalidPayload("subscriber_answer takes an answer")
        if connection.media is None:
            raise NotJoined("No media session yet: publish first")
        await connection.media.handle_subscriber_answer(payload.sdp)
        return None

    async def _ice_candidate(
        self, sid: str, connection: Connection, payload: IceCandidateIn
    ) -> dict[str, Any]:
        connection.joined()
        if connection.media is None:
            raise NotJoined("No media session yet: publish first")
        accepted = await connection.media.add_ice_candidate(
            payload.pc, payload.candidate, payload.sdpMid, payload.sdpMLineIndex
        )
        return {"accepted": accepted}

    async def _mute(self, sid: str, connection: Connection, payload: MuteIn) -> None:
        consult_id, participant = connection.joined()
        registry = self.services.registry
        presence = (await registry.presence(consult_id)).get(participant.id)
        if presence is None:
            raise NotJoined("Join the consult first")
        await self._set_muted(consult_id, participant, presence, payload.source, payload.muted)
        return None

    async def _set_muted(
        self,
        consult_id: str,
        participant: ParticipantView,
        presence: Presence,
        source: Source,
        muted: bool,
    ) -> None:
        """Stop (or resume) forwarding a source and show the new state to everyone."""
        self.services.media.room(consult_id).set_muted(participant.id, source, muted)
        updated = presence.with_muted(source, muted)
        await self.services.registry.set_presence(consult_id, participant.id, updated)
        await self.sio.emit(
            "participant_updated",
            participant_payload(participant, updated),
            room=consult_room(consult_id),
        )

    async def _target(
        self, connection: Connection, participant_id: str
    ) -> tuple[str, ParticipantView, Presence]:
        """The consult, the participant a host acts on, and their presence."""
        consult_id, _ = connection.joined()
        if not connection.grants.moderate:
            raise Forbidden("Only the host may do this")
        consult = await self.services.consults.get(connection.identity, consult_id)
        target = consult.participant(participant_id)
        if target is None:
            raise ParticipantNotFound("No such participant")
        presence = (await self.services.registry.presence(consult_id)).get(target.id)
        if presence is None or presence.status != "joined":
            raise NotJoined(f"{target.name} is not in the consult")
        return consult_id, target, presence

    async def _mute_participant(
        self, sid: str, connection: Connection, payload: ModerateMuteIn
    ) -> None:
        consult_id, target, presence = await self._target(connection, payload.participant_id)
        await self._set_muted(consult_id, target, presence, payload.source, True)
        await self.sio.emit(
            "muted_by_host",
            {"source": payload.source, "by": connection.identity.name},
            to=presence.sid,
        )
        await self.services.consults.note(
            consult_id,
            connection.identity,
            "muted_participant",
            {"participant_id": target.id, "name": target.name, "source": payload.source},
        )
        return None

    async def _remove_participant(
        self, sid: str, connection: Connection, payload: ParticipantRef
    ) -> None:
        consult_id, target, presence = await self._target(connection, payload.participant_id)
        await self.services.consults.remove(connection.identity, consult_id, target.id)
        await self.sio.emit("removed", {"by": connection.identity.name}, to=presence.sid)
        removed = self._connections.get(presence.sid)
        if removed is not None and removed.consult_id == consult_id:
            async with removed.lock:
                await self._depart(presence.sid, removed, None)
        # On another process, its disconnect handler departs.
        await self.sio.disconnect(presence.sid)
        return None

    async def _chat(self, sid: str, connection: Connection, payload: ChatIn) -> dict[str, Any]:
        consult_id, participant = connection.joined()
        if connection.waiting:
            raise InLobby("Wait until the host admits you")
        entry = await self.services.consults.note(
            consult_id,
            connection.identity,
            "chat",
            {"participant_id": participant.id, "text": payload.text},
        )
        message = chat_payload(entry)
        await self.sio.emit("chat_message", message, room=consult_room(consult_id))
        return {"message": message}

    async def _leave(self, sid: str, connection: Connection, payload: EmptyIn) -> None:
        connection.joined()
        await self._depart(sid, connection, "left")
        return None

    async def _end(self, sid: str, connection: Connection, payload: EmptyIn) -> None:
        consult_id, _ = connection.joined()
        if not connection.grants.end:
            raise Forbidden("Only the host may end the consult")
        await self.end_consult(connection.identity, consult_id)
        return None

    # --- shared with REST ------------------------------------------------------------------

    async def end_consult(self, caller: Identity, consult_id: str) -> ConsultView:
        """End a consult for everyone: store it, tell every participant, close its media."""
        services = self.services
        consult = await services.consults.end(caller, consult_id)
        ended = {"consult_id": consult_id, "by": caller.name}
        for room in (consult_room(consult_id), lobby_room(consult_id)):
            await self.sio.emit("consult_ended", ended, room=room)
            await self.sio.close_room(room)
        await self.sio.close_room(hosts_room(consult_id))
        await services.media.close_room(consult_id)
        await services.registry.clear_consult(consult_id)
        for connection in self._connections.values():
            if connection.consult_id == consult_id:
                connection.consult_id, connection.participant, connection.media = None, None, None
                connection.grants, connection.waiting = NO_GRANTS, False
        return consult

    async def _depart(self, sid: str, connection: Connection, how: str | None) -> None:
        """Take a connection out of its consult; ``how`` goes on the timeline (None: already)."""
        consult_id, participant = connection.joined()
        services = self.services
        if connection.media is not None:
            await services.media.room(consult_id).leave(participant.id)
        presence = (await services.registry.presence(consult_id)).get(participant.id)
        if presence is not None and presence.sid == sid:
            await services.registry.clear_presence(consult_id, participant.id)
        for room in (consult_room(consult_id), lobby_room(consult_id), hosts_room(consult_id)):
            await self.sio.leave_room(sid, room)
        connection.consult_id, connection.participant, connection.media = None, None, None
        connection.grants, connection.waiting = NO_GRANTS, False
        await self.sio.emit(
            "participant_left", {"participant_id": participant.id}, room=consult_room(consult_id)
        )
        try:
            if how is not None:
                await services.consults.note(consult_id, connection.identity, how)
            consult = await services.consults.get(connection.identity, consult_id)
        except DomainError:
            return
        await self._broadcast_lobby(consult)


#: The application's live-consult side, for REST routes that must notify connected participants.
LIVE_CONSULTS = web.AppKey("live_consults", ConsultSignaling)
