"""Socket.IO event handlers of live consults: join, lobby and admit, offer/answer/ICE, mute,
moderation, chat, leave and end; a dropped connection's seat, its resume, and going away.

Each handler is registered with its schema through :class:`signaling.protocol.ClientEvents`,
which validates, acks and maps errors (docs/protocol.md). Media is reached only through the
protocols of :mod:`media.api`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from media import ParticipantSession, Source
from recordings.service import CONSENT_KINDS
from rooms.audit import AuditRecord
from rooms.errors import (
    DomainError,
    Forbidden,
    InvalidPayload,
    ParticipantNotFound,
    TokenExpired,
    TokenMissing,
)
from rooms.identity import Identity
from rooms.registry import PRESENCE_REFRESH_SECONDS, UNMUTED, Presence
from rooms.turn import JoinIce, join_ice
from rooms.views import ConsultView, ParticipantView
from signaling.addresses import client_address
from signaling.context import Services
from signaling.errors import RateLimited, as_domain_error, outage_tolerated, problem_body
from signaling.limits import SOCKET_RENEWAL_SECONDS, Limiter, SdpTooLarge, identity_key
from signaling.metrics import JOIN_SECONDS, SOCKET_CONNECTIONS
from signaling.protocol import (
    CHAT_HISTORY,
    AlreadyJoined,
    ClientEvents,
    Connection,
    InLobby,
    MediaOnOtherNode,
    NotJoined,
    chat_payload,
    consult_room,
    hosts_room,
    lobby_room,
    participant_payload,
    participants_payload,
    waiting_payload,
)
from signaling.resume import ResumeRefused, ResumeTokens, Seat
from signaling.schemas import (
    AudioOnlyIn,
    ChatIn,
    EmptyIn,
    IceCandidateIn,
    JoinIn,
    ModerateMuteIn,
    MuteIn,
    ParticipantRef,
    PublishIn,
    ResumeIn,
    SessionDescriptionIn,
    SubscribeIn,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeldSeat:
    """The seat of a participant whose connection dropped, kept for the grace period.

    :param presence: Their presence meanwhile (``reconnecting``).
    :param timer: Gives the seat up when the grace period ends.
    :param since: When the connection dropped (``time.monotonic()``).
    """

    presence: Presence
    timer: asyncio.TimerHandle
    since: float


class ConsultSignaling:
    """The Socket.IO side of live consults, bound to one ``socketio.AsyncServer``.

    :param services: the process's services (database, registry, media, verifier).
    :param limiter: counts connections and events against the deployment's limits.
    """

    def __init__(self, services: Services, limiter: Limiter) -> None:
        self.services = services
        self.limiter = limiter
        self.sio: socketio.AsyncServer = services.sio
        self._connections: dict[str, Connection] = {}
        #: How many of ``_connections`` each identity holds (a connect must not scan them all).
        self._sockets_of: Counter[str] = Counter()
        grace = services.settings.reconnect_grace_seconds
        #: A participant holds a fresh token at any moment: it outlives the grace period.
        self.resume_tokens = ResumeTokens(
            services.settings.signing_secret(), grace + self.resume_refresh_seconds
        )
        #: The seats of dropped participants (their presence, and the timer that gives them up).
        self._held: dict[tuple[str, str], HeldSeat] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self._going_away = False
        #: Called with the consult's id after each departure (the recording checks its recorders).
        self.departure_listeners: list[Callable[[str], Awaitable[None]]] = []
        services.cluster.ended_listeners.append(self.close_here)
        services.cluster.seated_consults = self.seated_consults
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        #: Registers client events; :mod:`signaling.recording_events` adds its own here.
        self.client_events = ClientEvents(self.sio, self._connections, limiter)
        register = self.client_events.register
        register("join", JoinIn, self._join)
        register("resume", ResumeIn, self._resume)
        register("admit", ParticipantRef, self._admit)
        register("publish", PublishIn, self._publish)
        register("subscribe", SubscribeIn, self._subscribe)
        register("subscriber_answer", SessionDescriptionIn, self._subscriber_answer)
        register("ice_candidate", IceCandidateIn, self._ice_candidate, limit="ice_candidates")
        register("mute", MuteIn, self._mute)
        register("audio_only", AudioOnlyIn, self._audio_only)
        register("leave", EmptyIn, self._leave)
        register("end", EmptyIn, self._end)
        register("mute_participant", ModerateMuteIn, self._mute_participant)
        register("remove_participant", ParticipantRef, self._remove_participant)
        register("chat", ChatIn, self._chat, limit="chat")

    # --- connection and helpers -------------------------------------------------------------

    def seated_consults(self) -> set[str]:
        """The consults with a participant joined here, connected or holding a dropped seat."""
        joined = {c.consult_id for c in self._connections.values() if c.participant}
        return {consult_id for consult_id in joined if consult_id} | {
            consult_id for consult_id, _ in self._held
        }

    @property
    def resume_refresh_seconds(self) -> float:
        """How often a joined participant is sent a fresh resume token."""
        return self.services.settings.reconnect_grace_seconds / 3

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        resume_token = auth.get("resume_token") if isinstance(auth, dict) else None
        try:
            if isinstance(resume_token, str) and resume_token:
                # Reconnecting: the resume token stands for the participant, in its consult only
                # (the identity token it joined with may have expired meanwhile).
                identity = self.resume_tokens.seat(resume_token).identity
            elif not isinstance(token, str) or not token:
                raise TokenMissing("A token is needed to connect")
            else:
                identity = self.services.verifier.verify(token)
            await self._admit_connection(sid, identity, environ)
        except Exception as exc:
            error = as_domain_error(exc)
            if not isinstance(error, RateLimited):  # the limiter logs a flood once
                logger.warning("connection refused", extra={"code": error.code})
            raise socketio.exceptions.ConnectionRefusedError(
                error.code, problem_body(error)["error"]
            ) from exc
        connection = Connection(identity, address=client_address(environ["aiohttp.request"]))
        if identity.expires_at is not None:
            # The token's end is the connection's end: nobody stays on a token that expired.
            leeway = self.services.settings.token_leeway_seconds
            delay = max(0.0, identity.expires_at + leeway - time.time())
            loop = asyncio.get_running_loop()
            connection.expiry = loop.call_later(delay, self._expire, sid)
        self._connections[sid] = connection
        self._sockets_of[identity_key(identity)] += 1
        SOCKET_CONNECTIONS.inc()

    def _expire(self, sid: str) -> None:
        """Close a connection whose token has expired (a timer set at connect)."""
        task = asyncio.create_task(self._close_expired(sid))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _close_expired(self, sid: str) -> None:
        connection = self._connections.get(sid)
        if connection is None:
            return
        logger.info("connection closed", extra={"reason": "token_expired"})
        async with connection.lock:
            if connection.consult_id is not None:  # a departure: no seat is held for it
                await self._depart(sid, connection, "disconnected")
        error = TokenExpired("The token has expired: open the link again")
        await self._send(sid, "session_expired", problem_body(error)["error"])
        await self.sio.disconnect(sid)

    async def _admit_connection(
        self, sid: str, identity: Identity, environ: dict[str, Any]
    ) -> None:
        """Count a new connection against the connect rates and the identity's socket quota."""
        who = identity_key(identity)
        address = client_address(environ["aiohttp.request"]) or "unknown"
        held_here = self._sockets_of[who]
        bound = self.services.settings.max_sockets_per_identity
        rates = [("connects_per_address", (address,)), ("connects", (who,))]
        await self.limiter.open_socket(who, sid, held_here, bound, rates)

    async def keep_socket_claims(self) -> None:
        """Renew the quota claims of this process's sockets (a supervised job; a crashed
        process's claims expire)."""
        while True:
            await asyncio.sleep(SOCKET_RENEWAL_SECONDS)
            held = [(identity_key(c.identity), sid) for sid, c in self._connections.items()]
            await self.limiter.renew_sockets(held)

    async def _send(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        """Send an event to one connection: straight to it when it is connected here, else
        through the Socket.IO manager to the node that holds it. (The Redis manager publishes
        every emit to every node, which each decode, even one to a connection of its own.)"""
        await self.sio.emit(event, payload, to=sid, ignore_queue=sid in self._connections)

    def _check_sdp(self, sdp: str) -> None:
        if len(sdp.encode()) > self.services.settings.max_sdp_bytes:
            raise SdpTooLarge("The session description is longer than the server accepts")

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self._connections.pop(sid, None)
        if connection is None:
            return
        who = identity_key(connection.identity)
        self._sockets_of[who] -= 1
        if self._sockets_of[who] <= 0:
            del self._sockets_of[who]
        SOCKET_CONNECTIONS.dec()
        if connection.expiry is not None:
            connection.expiry.cancel()
        await self.limiter.close_socket(who, sid)
        if self._going_away:
            return  # the seats stay as they are: the clients come back to the next process
        async with connection.lock:
            if connection.consult_id is not None:
                await self._hold_seat(sid, connection)

    async def _participants(self, consult: ConsultView) -> list[dict[str, Any]]:
        return participants_payload(consult, await self.services.registry.presence(consult.id))

    async def _broadcast_lobby(
        self, consult: ConsultView, presence: dict[str, Presence] | None = None
    ) -> None:
        if presence is None:
            presence = await self.services.registry.presence(consult.id)
        waiting = waiting_payload(consult, presence)
        await self.sio.emit("lobby", {"waiting": waiting}, room=hosts_room(consult.id))

    async def _store_presence(
        self, consult_id: str, participant_id: str, presence: Presence
    ) -> None:
        """Store a participant's presence, and remember it on its connection when it is ours
        (:meth:`refresh_presence` asserts it again)."""
        await self.services.registry.set_presence(consult_id, participant_id, presence)
        connection = self._connections.get(presence.sid)
        if connection is not None and connection.consult_id == consult_id:
            connection.presence = presence

    async def refresh_presence(self) -> None:
        """Assert the presence of this process's participants again, every
        :data:`~rooms.registry.PRESENCE_REFRESH_SECONDS`, until cancelled: it keeps them from
        expiring in Redis and restores them after Redis lost them (a restart). Raises on a
        registry fault (the supervisor runs it again).

        Each consult's participants are read just before its refresh, so a departure while an
        earlier consult refreshes is not asserted again (a race left is a ghost for one TTL).
        """
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_SECONDS)
            consults = {c.consult_id for c in self._connections.values() if c.consult_id}
            consults |= {consult_id for consult_id, _ in self._held}
            for consult_id in consults:
                held = {
                    c.participant.id: c.presence
                    for c in list(self._connections.values())
                    if c.consult_id == consult_id and c.participant and c.presence
                }
                # Seats kept for a dropped connection must not expire before its grace period.
                held |= {
                    participant_id: seat.presence
                    for (held_in, participant_id), seat in list(self._held.items())
                    if held_in == consult_id
                }
                if held:
                    await self.services.registry.refresh_presence(consult_id, held)

    async def _open_media(self, sid: str, connection: Connection) -> ParticipantSession:
        consult_id, participant = connection.joined()
        if connection.media is None:

            async def send(event: str, payload: dict[str, Any]) -> None:
                await self._send(sid, event, payload)

            room = self.services.media.room(consult_id)
            connection.media = await room.join(participant.id, send)
        return connection.media

    # --- events -----------------------------------------------------------------------------

    async def _join(self, sid: str, connection: Connection, payload: JoinIn) -> dict[str, Any]:
        if connection.consult_id is not None:
            raise AlreadyJoined("This connection already joined a consult")
        with JOIN_SECONDS.time():
            return await self._arrive(sid, connection, payload.consult_id)

    async def _resume(self, sid: str, connection: Connection, payload: ResumeIn) -> dict[str, Any]:
        """Take a seat back after a dropped connection (or a restarted server): no new join."""
        if connection.consult_id is not None:
            raise AlreadyJoined("This connection already joined a consult")
        seat = self.resume_tokens.check(
            payload.resume_token, connection.identity, payload.consult_id
        )
        return await self._arrive(sid, connection, payload.consult_id, seat)

    async def _arrive(
        self, sid: str, connection: Connection, consult_id: str, seat: Seat | None = None
    ) -> dict[str, Any]:
        """The join's (or resume's) work: a fixed number of database and registry round trips.

        On a server busy forwarding media every round trip waits for the event loop, so a join
        reads what it needs once (the consult, presence, the last chat messages) and no more.
        """
        services = self.services
        held = self._held.get((consult_id, seat.participant_id)) if seat is not None else None
        arrival = await services.consults.arrive(
            connection.identity,
            consult_id,
            resumed=seat is not None,
            # The gap in their media, for the timeline (unknown after a restart of the server).
            away_seconds=round(time.monotonic() - held.since, 1) if held is not None else None,
            allowed=self._media_here,
        )
        consult, participant = arrival.consult, arrival.participant
        if seat is not None and seat.participant_id != participant.id:
            raise ResumeRefused("This resume token is for another participant")
        registry = services.registry
        present = await registry.presence(consult.id)
        previous = present.get(participant.id)
        self._release_hold(consult.id, participant.id)
        if previous is not None and previous.sid != sid:
            # A participant holds one connection: a rejoin (new tab, reconnect) replaces the
            # old, whose disconnect must not give up the seat this one now holds.
            superseded = self._connections.get(previous.sid)
            if superseded is not None:
                superseded.leave_consult()
            await self.sio.disconnect(previous.sid)
        connection.consult_id, connection.participant = consult.id, participant
        connection.grants, connection.waiting = arrival.grants, arrival.waits_in_lobby
        muted = previous.muted if previous is not None else dict(UNMUTED)
        mine = Presence("waiting" if connection.waiting else "joined", sid, muted)
        await self._store_presence(consult.id, participant.id, mine)
        presence = {**present, participant.id: mine}
        if connection.waiting:
            await self.sio.enter_room(sid, lobby_room(consult.id))
            await self._broadcast_lobby(consult, presence)
        else:
            await self._enter_consult(sid, consult, participant, mine, resumed=seat is not None)
            if arrival.grants.admit:
                await self.sio.enter_room(sid, hosts_room(consult.id))
        chat, consent = await services.consults.latest_events_of_each(
            consult.id, [(("chat",), CHAT_HISTORY), (CONSENT_KINDS, 1)]
        )
        if chat:  # the chat history is health data: its reads are audited like a record's
            await services.clinical.audit.record(
                connection.identity,
                AuditRecord("view", "chat", consult.id, consult.id, consult.hospital),
                connection.address,
                {"messages": len(chat)},
            )
        token = self.resume_tokens.mint(Seat(consult.id, participant.id, connection.identity))
        ice = await self._join_ice(consult, participant.id)
        return {
            "status": "lobby" if connection.waiting else "joined",
            "participant": participant_payload(participant, mine),
            "consult": consult.as_dict(),
            "grants": arrival.grants.as_dict(),
            "participants": participants_payload(consult, presence),
            "waiting": waiting_payload(consult, presence) if arrival.grants.admit else [],
            "chat": [chat_payload(entry) for entry in chat],
            "ice_servers": ice.servers,
            "ice_transport_policy": ice.transport_policy,
            "recording": services.recordings.state_of(consult.id, consent[-1] if consent else None),
            "resume_token": token,
        }

    async def _join_ice(self, consult: ConsultView, participant_id: str) -> JoinIce:
        """The ICE servers of a join (TURN credentials of this participant), by the consult's
        hospital's record or the environment's settings."""
        entry = await self.services.hospitals.get(consult.hospital, with_secrets=True)
        starts_at = max(time.time(), consult.scheduled_at.timestamp())
        return join_ice(
            self.services.ice_defaults,
            entry.profile.ice if entry is not None else None,
            participant_id,
            starts_at,
        )

    async def _media_here(self, consult: ConsultView) -> None:
        """Place the consult's media (again, if its node died); a join or resume that reached
        another node than the media's is sent there (docs/cluster.md: the redirect)."""
        services = self.services
        placement = await services.cluster.place(consult)
        if placement.node.node_id != services.node_id:
            raise MediaOnOtherNode(
                "This consult's media is served by another node: connect there",
                details={"node_url": placement.node.url},
            )

    async def _enter_consult(
        self,
        sid: str,
        consult: ConsultView,
        participant: ParticipantView,
        presence: Presence,
        *,
        resumed: bool = False,
    ) -> None:
        """Put a connection in the consult's room; the others see a join, or a return."""
        await self.sio.enter_room(sid, consult_room(consult.id))
        await self.sio.emit(
            "participant_updated" if resumed else "participant_joined",
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
            await self._store_presence(consult_id, admitted.id, joined)
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
        self._check_sdp(payload.sdp)
        if not connection.grants.publish:
            raise Forbidden("You may not publish media in this consult")
        if payload.restart:
            # New peer connections from the client: the old ones are replaced on open.
            connection.media = None
        media = await self._open_media(sid, connection)
        answer = await media.handle_publisher_offer(payload.sdp, payload.sources, payload.layers)
        return {"type": "answer", "sdp": answer}

    async def _subscribe(self, sid: str, connection: Connection, payload: SubscribeIn) -> None:
        """Receive the others' media without publishing (no camera or microphone allowed)."""
        await self._admitted_now(connection)
        if not connection.grants.subscribe:
            raise Forbidden("You may not receive media in this consult")
        if payload.restart:
            connection.media = None  # new client connections: the old ones are replaced on open
        await self._open_media(sid, connection)
        return None

    async def _subscriber_answer(
        self, sid: str, connection: Connection, payload: SessionDescriptionIn
    ) -> None:
        connection.joined()
        if payload.type != "answer":
            raise InvalidPayload("subscriber_answer takes an answer")
        self._check_sdp(payload.sdp)
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

    async def _audio_only(self, sid: str, connection: Connection, payload: AudioOnlyIn) -> None:
        """The participant's own "Audio only": no video to them, and theirs shown paused."""
        consult_id, participant = connection.joined()
        presence = (await self.services.registry.presence(consult_id)).get(participant.id)
        if presence is None:
            raise NotJoined("Join the consult first")
        await self.services.media.room(consult_id).set_audio_only(participant.id, payload.enabled)
        # The others see its camera paused, as after a mute; the client stops sending it.
        await self._set_muted(consult_id, participant, presence, "camera", payload.enabled)
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
        await self._store_presence(consult_id, participant.id, updated)
        await self.sio.emit(
            "participant_updated",
            participant_payload(participant, updated),
            room=consult_room(consult_id),
        )

    async def _target(
        self, connection: Connection, participant_id: str, *, reconnecting_too: bool = False
    ) -> tuple[str, ParticipantView, Presence]:
        """The consult, the participant a host acts on, and their presence (joined, or also
        reconnecting: a seat held for a dropped connection)."""
        consult_id, _ = connection.joined()
        if not connection.grants.moderate:
            raise Forbidden("Only the host may do this")
        consult = await self.services.consults.get(connection.identity, consult_id)
        target = consult.participant(participant_id)
        if target is None:
            raise ParticipantNotFound("No such participant")
        presence = (await self.services.registry.presence(consult_id)).get(target.id)
        present = ("joined", "reconnecting") if reconnecting_too else ("joined",)
        if presence is None or presence.status not in present:
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
        consult_id, target, presence = await self._target(
            connection, payload.participant_id, reconnecting_too=True
        )
        await self.services.consults.remove(connection.identity, consult_id, target.id)
        if presence.status == "reconnecting":
            # Their connection is gone already: give up the held seat now (a resume is refused).
            await self._give_up_seat(consult_id, target.id, presence.sid, connection.identity, None)
            return None
        await self._send(presence.sid, "removed", {"by": connection.identity.name})
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
        await self.close_here(consult_id)
        with outage_tolerated("live state of an ended consult not cleared", consult_id=consult_id):
            await services.registry.clear_consult(consult_id)  # else it expires by itself
            await services.cluster.directory.release(consult_id)
            # Its media and recording may be on another node: that node closes them.
            await services.cluster.directory.announce_ended(consult_id)
        return consult

    async def close_here(self, consult_id: str) -> None:
        """Close an ended consult's media on this node (the recording stops with it), and take
        this node's connections out of it."""
        await self.services.media.close_room(consult_id)
        for connection in self._connections.values():
            if connection.consult_id == consult_id:
                connection.leave_consult()

    async def _depart(self, sid: str, connection: Connection, how: str | None) -> None:
        """Take a connection out of its consult; ``how`` goes on the timeline (None: already).

        Idempotent and outage-proof: the connection leaves its consult, its media and its rooms
        whatever the registry or the database answer; a presence Redis could not clear expires
        by itself (``rooms.registry.PRESENCE_TTL_SECONDS``).
        """
        consult_id, participant = connection.joined()
        for room in (consult_room(consult_id), lobby_room(consult_id), hosts_room(consult_id)):
            await self.sio.leave_room(sid, room)
        connection.leave_consult()
        await self._give_up_seat(consult_id, participant.id, sid, connection.identity, how)

    async def _give_up_seat(
        self, consult_id: str, participant_id: str, sid: str, identity: Identity, how: str | None
    ) -> None:
        """The participant is gone: their media, their presence, a departure for the others."""
        services = self.services
        self._release_hold(consult_id, participant_id)
        presence = (await services.registry.presence(consult_id)).get(participant_id)
        if presence is not None and presence.sid != sid:
            return  # another connection holds the seat now (a resume)
        if consult_id in services.media.consult_ids:
            await services.media.room(consult_id).leave(participant_id)
        with outage_tolerated("presence not cleared", consult_id=consult_id):
            await services.registry.clear_presence(consult_id, participant_id, sid)
        # The timeline first: whoever reads it on hearing of the departure finds it there.
        noted = how is None
        with outage_tolerated("departure not noted", consult_id=consult_id):
            try:
                if how is not None:
                    await services.consults.note(consult_id, identity, how)
                noted = True
            except DomainError:
                pass
        await self.sio.emit(
            "participant_left", {"participant_id": participant_id}, room=consult_room(consult_id)
        )
        for listener in self.departure_listeners:
            await listener(consult_id)
        if not noted:
            return
        with outage_tolerated("lobby not refreshed", consult_id=consult_id):
            try:
                consult = await services.consults.get(identity, consult_id)
            except DomainError:
                return
            await self._broadcast_lobby(consult)

    # --- dropped connections, resume, going away ---------------------------------------------

    async def _hold_seat(self, sid: str, connection: Connection) -> None:
        """A connection dropped: keep a joined seat for the grace period, show "reconnecting".

        Someone waiting in the lobby simply leaves it (they come back to the lobby).
        """
        consult_id, participant = connection.joined()
        registry = self.services.registry
        presence = (await registry.presence(consult_id)).get(participant.id)
        if presence is not None and presence.sid == sid and presence.status == "waiting":
            await self._depart(sid, connection, "disconnected")
            return
        connection.leave_consult()  # its media stays in the consult until resumed or given up
        if presence is None or presence.sid != sid:
            return  # another connection holds the seat already (a resume overtook the drop)
        held = Presence("reconnecting", sid, presence.muted)
        await registry.set_presence(consult_id, participant.id, held)
        key = (consult_id, participant.id)
        timer = asyncio.get_running_loop().call_later(
            self.services.settings.reconnect_grace_seconds,
            self._seat_expired,
            key,
            sid,
            connection.identity,
        )
        self._held[key] = HeldSeat(held, timer, time.monotonic())
        await self.sio.emit(
            "participant_reconnecting",
            participant_payload(participant, held),
            room=consult_room(consult_id),
        )
        logger.info(
            "connection dropped: seat held",
            extra={"consult_id": consult_id, "participant_id": participant.id},
        )

    def _seat_expired(self, key: tuple[str, str], sid: str, identity: Identity) -> None:
        self._held.pop(key, None)
        task = asyncio.ensure_future(self._give_up_held_seat(key, sid, identity))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _give_up_held_seat(self, key: tuple[str, str], sid: str, identity: Identity) -> None:
        consult_id, participant_id = key
        presence = (await self.services.registry.presence(consult_id)).get(participant_id)
        if presence is None or presence.sid != sid or presence.status != "reconnecting":
            return
        logger.info(
            "grace period over: seat given up",
            extra={"consult_id": consult_id, "participant_id": participant_id},
        )
        try:
            await self._give_up_seat(consult_id, participant_id, sid, identity, "disconnected")
        except Exception:
            logger.exception("giving up a seat failed", extra={"consult_id": consult_id})

    def _release_hold(self, consult_id: str, participant_id: str) -> None:
        seat = self._held.pop((consult_id, participant_id), None)
        if seat is not None:
            seat.timer.cancel()

    async def refresh_resume_tokens(self) -> None:
        """Send every joined participant a fresh resume token, forever (a background task)."""
        while True:
            await asyncio.sleep(self.resume_refresh_seconds)
            for sid, connection in list(self._connections.items()):
                if connection.consult_id is None or connection.participant is None:
                    continue
                seat = Seat(connection.consult_id, connection.participant.id, connection.identity)
                await self._send(
                    sid, "resume_token", {"resume_token": self.resume_tokens.mint(seat)}
                )

    async def going_away(self) -> None:
        """The server stops: tell every client to reconnect, keep their seats, disconnect them."""
        self._going_away = True
        for seat in self._held.values():
            seat.timer.cancel()
        self._held.clear()
        sids = list(self._connections)
        logger.info("going away", extra={"connections": len(sids)})
        for sid in sids:
            await self._send(sid, "server_going_away", {})
            await self.sio.disconnect(sid)


#: The application's live-consult side, for REST routes that must notify connected participants.
LIVE_CONSULTS = web.AppKey("live_consults", ConsultSignaling)
