"""The consult service: schedule, read, join, admit, remove and end consults."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from config.database import Database
from rooms.errors import (
    ConsultNotFound,
    Forbidden,
    InvalidPayload,
    NotInLobby,
    NotInvited,
    ParticipantNotFound,
    ParticipantRemoved,
    WrongConsult,
)
from rooms.grants import ConsultGrants, grants_for
from rooms.identity import HOST_ROLES, PARTICIPANT_ROLES, SCHEDULING_ROLES, Identity, Role
from rooms.lifecycle import ConsultState, on_arrival, transition
from rooms.models import Consult, Participant, TimelineEvent, ensure_hospital, utcnow
from rooms.views import ConsultView, ParticipantView, TimelineEntry
from rooms.webhooks.events import TIMELINE_EVENTS, EventType, WebhookEvents

logger = logging.getLogger(__name__)

#: The most participants one consult may have (host included).
MAX_PARTICIPANTS = 16
#: Hospital roles that may read and end any consult of their own hospital.
HOSPITAL_STAFF_ROLES = frozenset({Role.COORDINATOR, Role.SERVICE, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Invitee:
    """Someone to invite: subject, display name, role and (for guests from elsewhere) hospital."""

    sub: str
    name: str
    role: Role
    hospital: str | None = None


@dataclass(frozen=True, slots=True)
class ConsultSpec:
    """What the hospital system asks for when it schedules a consult."""

    kind: str
    hospital: str
    title: str
    scheduled_at: datetime
    host: Invitee
    participants: Sequence[Invitee]


@dataclass(frozen=True, slots=True)
class Arrival:
    """The outcome of a participant arriving: the consult, who they are there, and their grants."""

    consult: ConsultView
    participant: ParticipantView
    grants: ConsultGrants

    @property
    def waits_in_lobby(self) -> bool:
        """True when the participant must wait for a host to admit them."""
        return self.grants.lobby and not self.participant.admitted


def _check_spec(spec: ConsultSpec) -> None:
    everyone = [spec.host, *spec.participants]
    errors: list[dict[str, str]] = []
    if spec.host.role not in HOST_ROLES:
        errors.append({"field": "host.role", "message": "the host must be a doctor or an expert"})
    for index, invitee in enumerate(spec.participants):
        if invitee.role not in PARTICIPANT_ROLES:
            errors.append(
                {
                    "field": f"participants[{index}].role",
                    "message": "must be patient, doctor or expert",
                }
            )
    # A person is (hospital, sub): namesakes of two hospitals are two people.
    people = [(invitee.hospital or spec.hospital, invitee.sub) for invitee in everyone]
    if len(set(people)) != len(people):
        errors.append({"field": "participants", "message": "a person is invited twice"})
    if len(everyone) > MAX_PARTICIPANTS:
        errors.append(
            {"field": "participants", "message": f"at most {MAX_PARTICIPANTS} participants"}
        )
    roles = [invitee.role for invitee in spec.participants]
    if spec.kind == "visit" and Role.PATIENT not in roles:
        errors.append({"field": "participants", "message": "a visit needs a patient"})
    if spec.kind in ("referral", "conference") and not any(r in HOST_ROLES for r in roles):
        errors.append(
            {"field": "participants", "message": f"a {spec.kind} needs a doctor or an expert"}
        )
    if errors:
        raise InvalidPayload("The consult is not valid", details=errors)


class ConsultService:
    """Consults, their participants and their timeline, authorised per caller.

    Each change that is a webhook event (scheduled, started, joined, waiting, left, ended, a
    recording ready) is enqueued for the hospital's endpoints in the transaction of the change.

    :param database: where consults are stored.
    :param clock: returns the current UTC time (tests may pass their own).
    :param webhooks: where webhook events are enqueued; None sends none.
    """

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime] = utcnow,
        webhooks: WebhookEvents | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._webhooks = webhooks

    async def schedule(self, caller: Identity, spec: ConsultSpec) -> ConsultView:
        """Store a new consult and its invitations.

        :raises Forbidden: when the caller may not schedule consults for that hospital.
        :raises InvalidPayload: when the invitations do not make a valid consult.
        """
        if caller.role not in SCHEDULING_ROLES:
            raise Forbidden("Only coordinators, doctors and hospital systems schedule consults")
        if caller.hospital != spec.hospital:
            raise Forbidden("Consults can only be scheduled for your own hospital")
        _check_spec(spec)
        async with self._database.transaction() as session:
            await ensure_hospital(session, spec.hospital, spec.hospital)
            consult = Consult(
                kind=spec.kind,
                hospital_id=spec.hospital,
                title=spec.title,
                state=ConsultState.SCHEDULED.value,
                scheduled_at=spec.scheduled_at,
                created_by=caller.sub,
                created_at=self._clock(),
            )
            session.add(consult)
            await session.flush()
            for index, invitee in enumerate([spec.host, *spec.participants]):
                session.add(
                    Participant(
                        consult_id=consult.id,
                        sub=invitee.sub,
                        name=invitee.name,
                        role=invitee.role.value,
                        hospital_id=invitee.hospital or spec.hospital,
                        is_host=index == 0,
                        created_at=self._clock(),
                    )
                )
            self._record(session, consult.id, caller, "scheduled", {"kind": spec.kind})
            await session.flush()
            consult_id = consult.id
            emitted = await self._emit(
                session,
                EventType.CONSULT_SCHEDULED,
                consult,
                {"scheduled_at": spec.scheduled_at.isoformat()},
            )
        self._notify(emitted)
        logger.info("consult scheduled", extra={"consult_id": consult_id, "kind": spec.kind})
        return await self._load(consult_id)

    async def get(self, caller: Identity, consult_id: str) -> ConsultView:
        """A consult, for its participants (not once removed) and its hospital's staff.

        :raises WrongConsult: for the join link of another consult.
        :raises ConsultNotFound: for an unknown id, and for callers who may not know it exists.
        :raises ParticipantRemoved: for a participant a host removed.
        """
        if caller.consult_id is not None and caller.consult_id != consult_id:
            raise WrongConsult("This link is for another consult")
        consult = await self._load(consult_id)
        if self._is_staff(caller, consult):
            return consult
        participant = consult.participant_of(caller.hospital, caller.sub)
        if participant is None:
            raise ConsultNotFound("No such consult")
        if participant.removed:
            raise ParticipantRemoved("The host removed you from this consult")
        return consult

    async def end(self, caller: Identity, consult_id: str) -> ConsultView:
        """End a consult for everyone: a host, or staff of its hospital, may do so."""
        consult = await self.get(caller, consult_id)
        participant = consult.participant_of(caller.hospital, caller.sub)
        is_host = participant is not None and participant.is_host and not caller.is_join_link
        if not is_host and not self._is_staff(caller, consult):
            raise Forbidden("Only the host may end this consult")
        async with self._database.transaction() as session:
            row = await self._row(session, consult_id)
            row.state = transition(ConsultState(row.state), ConsultState.ENDED).value
            row.ended_at = self._clock()
            self._record(session, consult_id, caller, "ended", {})
            emitted = await self._emit(
                session, EventType.CONSULT_ENDED, row, {"ended_at": row.ended_at.isoformat()}
            )
        self._notify(emitted)
        logger.info("consult ended", extra={"consult_id": consult_id})
        return await self._load(consult_id)

    async def arrive(
        self,
        caller: Identity,
        consult_id: str,
        *,
        resumed: bool = False,
        away_seconds: float | None = None,
        allowed: Callable[[ConsultView], Awaitable[None]] | None = None,
    ) -> Arrival:
        """A participant arrives: check the invitation, move the lifecycle, note it.

        A participant who resumes their seat after their connection dropped is noted as
        ``reconnected`` (with ``away_seconds``, the gap in their media, when it is known), not
        as a new join; an admitted one does not wait in the lobby again.

        The consult is read once, before the transaction: the transaction only writes (the
        timeline entry, the webhook events, and the state when the arrival moves it, by a
        compare-and-set on the state read, so a concurrent arrival that moved it first is seen
        and built on). A join's time on a busy server is its database round trips times the
        event loop's latency, so their number is fixed, whatever the consult's size or history.

        :param allowed: called with the consult once the arrival is allowed, before anything
            is written (the edge places the consult's media, or sends the caller to its node
            by raising).
        :raises WrongConsult: for the join link of another consult.
        :raises NotInvited: when the caller is not invited.
        :raises ParticipantRemoved: when a host removed the caller.
        :raises ConsultEnded: when the consult has ended.
        """
        if caller.consult_id is not None and caller.consult_id != consult_id:
            raise WrongConsult("This link is for another consult")
        consult = await self._load(consult_id)
        participant = consult.participant_of(caller.hospital, caller.sub)
        if participant is None:
            raise NotInvited("You are not invited to this consult")
        if participant.removed:
            raise ParticipantRemoved("The host removed you from this consult")
        on_arrival(consult.state, participant.is_host)  # ConsultEnded before anything else
        if allowed is not None:
            await allowed(consult)
        grants = grants_for(
            participant.role, is_host=participant.is_host, removed=False, ended=False
        )
        waiting = grants.lobby and not participant.admitted
        kind = "reconnected" if resumed else "waiting" if waiting else "joined"
        detail = {"away_seconds": away_seconds} if resumed and away_seconds is not None else {}
        async with self._database.transaction() as session:
            consult, started = await self._move_on_arrival(session, consult, participant.is_host)
            self._record(session, consult_id, caller, kind, detail)
            emitted = 0
            if started:
                assert consult.started_at is not None
                started_at = consult.started_at.isoformat()
                emitted += await self._emit(
                    session, EventType.CONSULT_STARTED, consult, {"started_at": started_at}
                )
            if not resumed:
                arrival = EventType.LOBBY_WAITING if waiting else EventType.PARTICIPANT_JOINED
                emitted += await self._emit(session, arrival, consult, _about(participant))
        self._notify(emitted)
        return Arrival(consult, participant, grants)

    async def _move_on_arrival(
        self, session: AsyncSession, consult: ConsultView, is_host: bool
    ) -> tuple[ConsultView, bool]:
        """Move the consult's state for an arrival (:func:`on_arrival`) in ``session``: the
        consult as it then is, and whether this arrival started it (made it live first)."""
        seen = consult.state
        while True:
            target = on_arrival(seen, is_host)
            if target is seen:
                return replace(consult, state=seen), False
            now = self._clock()
            values: dict[str, Any] = {"state": target.value}
            if target is ConsultState.LIVE:
                values["started_at"] = func.coalesce(Consult.started_at, now)
            moved = await session.execute(
                update(Consult)
                .where(Consult.id == consult.id, Consult.state == seen.value)
                .values(values)
                .returning(Consult.started_at)
            )
            row = moved.first()
            if row is not None:
                started_at = row.started_at
                started = target is ConsultState.LIVE and started_at == now
                return replace(consult, state=target, started_at=started_at), started
            # Another arrival (or the end) moved it since it was read: build on what it is now.
            current = await session.scalar(select(Consult.state).where(Consult.id == consult.id))
            if current is None:
                raise ConsultNotFound("No such consult")
            seen = ConsultState(current)

    async def admit(
        self, caller: Identity, consult_id: str, participant_id: str
    ) -> ParticipantView:
        """A host admits a participant from the lobby."""
        consult = await self._load(consult_id)
        self._require_host(caller, consult)
        target = consult.participant(participant_id)
        if target is None:
            raise ParticipantNotFound("No such participant")
        if target.admitted or target.removed:
            raise NotInLobby(f"{target.name} is not waiting in the lobby")
        async with self._database.transaction() as session:
            row = await session.get(Participant, participant_id)
            assert row is not None
            row.admitted_at = self._clock()
            self._record(
                session,
                consult_id,
                caller,
                "admitted",
                {"participant_id": target.id, "name": target.name},
            )
            emitted = await self._emit(
                session,
                EventType.PARTICIPANT_JOINED,
                await self._row(session, consult_id),
                _about(target) | {"admitted": True},
            )
        self._notify(emitted)
        logger.info("participant admitted", extra={"consult_id": consult_id})
        refreshed = (await self._load(consult_id)).participant(participant_id)
        assert refreshed is not None
        return refreshed

    async def remove(
        self, caller: Identity, consult_id: str, participant_id: str
    ) -> ParticipantView:
        """A host removes a participant; their token can no longer join."""
        consult = await self._load(consult_id)
        self._require_host(caller, consult)
        target = consult.participant(participant_id)
        if target is None:
            raise ParticipantNotFound("No such participant")
        if target.is_host:
            raise Forbidden("A host cannot be removed")
        async with self._database.transaction() as session:
            row = await session.get(Participant, participant_id)
            assert row is not None
            row.removed_at = self._clock()
            self._record(
                session,
                consult_id,
                caller,
                "removed",
                {"participant_id": target.id, "name": target.name},
            )
            emitted = await self._emit(
                session,
                EventType.PARTICIPANT_LEFT,
                await self._row(session, consult_id),
                _about(target) | {"reason": "removed"},
            )
        self._notify(emitted)
        refreshed = (await self._load(consult_id)).participant(participant_id)
        assert refreshed is not None
        return refreshed

    async def note(
        self, consult_id: str, actor: Identity, kind: str, detail: dict[str, Any] | None = None
    ) -> TimelineEntry:
        """Add an entry to a consult's timeline (left, muted, chat, …) and return it.

        A departure or a catalogued recording is also a webhook event, in the same transaction.
        """
        emitted = 0
        async with self._database.transaction() as session:
            row = self._record(session, consult_id, actor, kind, detail or {})
            event_type = TIMELINE_EVENTS.get(kind)
            if event_type is not None and self._webhooks is not None:
                emitted = await self._emit_noted(session, event_type, consult_id, actor, row)
        self._notify(emitted)
        return TimelineEntry.of(row)

    async def _emit_noted(
        self,
        session: AsyncSession,
        event_type: EventType,
        consult_id: str,
        actor: Identity,
        entry: TimelineEvent,
    ) -> int:
        """The webhook event of a noted timeline entry: who left, or which recording is ready."""
        consult = await self._row(session, consult_id)
        if event_type == EventType.PARTICIPANT_LEFT:
            who = next(
                (p for p in consult.participants if actor.is_person(p.hospital_id, p.sub)), None
            )
            if who is None:
                return 0
            data = _about(ParticipantView.of(who)) | {"reason": entry.kind}
        else:
            data = {
                "recording_id": entry.detail.get("recording_id"),
                "duration": entry.detail.get("duration"),
                "status": "recovered" if entry.kind == "recording_recovered" else "complete",
            }
        return await self._emit(session, event_type, consult, data)

    async def timeline(self, caller: Identity, consult_id: str) -> list[TimelineEntry]:
        """The consult's timeline, oldest first, for those who may read the consult."""
        await self.get(caller, consult_id)
        return await self.timeline_of(consult_id)

    # --- reads for other packages, which authorise their own callers (recordings) -------------

    async def timeline_of(self, consult_id: str) -> list[TimelineEntry]:
        """The consult's timeline, oldest first (the caller has authorised the reader)."""
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.consult_id == consult_id)
                .order_by(TimelineEvent.at, TimelineEvent.id)
            )
            return [TimelineEntry.of(row) for row in rows]

    async def latest_events(
        self, consult_id: str, kinds: Collection[str], limit: int = 1
    ) -> list[TimelineEntry]:
        """The consult's last ``limit`` timeline entries of `kinds`, oldest first.

        One short scan of the (consult, kind, at) index, however long the timeline.

        :param consult_id: the consult.
        :param kinds: the timeline kinds to look for.
        :param limit: how many of the latest to return.
        """
        return (await self.latest_events_of_each(consult_id, [(kinds, limit)]))[0]

    async def latest_events_of_each(
        self, consult_id: str, wanted: Sequence[tuple[Collection[str], int]]
    ) -> list[list[TimelineEntry]]:
        """For each ``(kinds, limit)`` of ``wanted``, the consult's last ``limit`` timeline
        entries of those kinds, oldest first: one statement for all (a join reads its chat
        history and the recording consent this way), a short index scan each.

        :param consult_id: the consult.
        :param wanted: the kinds to look for and how many of the latest, per list returned.
        """
        members = []
        for index, (kinds, limit) in enumerate(wanted):
            latest = (
                select(TimelineEvent.id, literal(index).label("wanted"))
                .where(TimelineEvent.consult_id == consult_id, TimelineEvent.kind.in_(kinds))
                .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc())
                .limit(limit)
                .subquery()
            )
            members.append(select(latest.c.id, latest.c.wanted))
        picked = union_all(*members).subquery()
        found: list[list[TimelineEntry]] = [[] for _ in wanted]
        async with self._database.sessions() as session:
            rows = await session.execute(
                select(TimelineEvent, picked.c.wanted)
                .join(picked, TimelineEvent.id == picked.c.id)
                .order_by(TimelineEvent.at, TimelineEvent.id)
            )
            for row, index in rows:
                found[index].append(TimelineEntry.of(row))
        return found

    async def invitation(self, consult_id: str, who: Identity) -> ParticipantView | None:
        """The person `who`'s invitation to a consult (removed or not), or None when not invited."""
        async with self._database.sessions() as session:
            row = await session.scalar(
                select(Participant).where(
                    Participant.consult_id == consult_id,
                    Participant.hospital_id == who.hospital,
                    Participant.sub == who.sub,
                )
            )
        return ParticipantView.of(row) if row is not None else None

    @staticmethod
    def invited_to(who: Identity, role: Role) -> Select[str]:
        """The ids of the consults `who` is invited to in `role` (removed or not), as a subquery.

        A subquery rather than a list: over the years a doctor's consults outnumber the bind
        parameters SQLite and PostgreSQL accept in one ``IN``.
        """
        return select(Participant.consult_id).where(
            Participant.hospital_id == who.hospital,
            Participant.sub == who.sub,
            Participant.role == role.value,
        )

    def _record(
        self,
        session: AsyncSession,
        consult_id: str,
        actor: Identity,
        kind: str,
        detail: dict[str, Any],
    ) -> TimelineEvent:
        row = TimelineEvent(
            consult_id=consult_id,
            at=self._clock(),
            actor_sub=actor.sub,
            actor_hospital=actor.hospital,
            actor_name=actor.name,
            kind=kind,
            detail=detail,
        )
        session.add(row)
        return row

    async def _emit(
        self,
        session: AsyncSession,
        event_type: EventType,
        consult: Consult | ConsultView,
        data: dict[str, Any],
    ) -> int:
        """Enqueue a webhook event about ``consult`` (with its state) in ``session``."""
        if self._webhooks is None:
            return 0
        if isinstance(consult, ConsultView):
            hospital, state = consult.hospital, consult.state.value
        else:
            hospital, state = consult.hospital_id, consult.state
        return await self._webhooks.emit(
            session,
            event_type,
            hospital=hospital,
            consult_id=consult.id,
            data={"kind": consult.kind, "state": state, **data},
        )

    def _notify(self, emitted: int) -> None:
        """Wake the outbox once the transaction that enqueued webhook events has committed."""
        if emitted and self._webhooks is not None:
            self._webhooks.notify()

    async def _load(self, consult_id: str) -> ConsultView:
        """The consult and its participants, in one statement (a join, not a second select)."""
        async with self._database.sessions() as session:
            row = await session.get(Consult, consult_id, options=[joinedload(Consult.participants)])
            if row is None:
                raise ConsultNotFound("No such consult")
            return ConsultView.of(row)

    @staticmethod
    async def _row(session: AsyncSession, consult_id: str) -> Consult:
        row = await session.get(Consult, consult_id)
        if row is None:
            raise ConsultNotFound("No such consult")
        return row

    @staticmethod
    def _is_staff(caller: Identity, consult: ConsultView) -> bool:
        return (
            caller.role in HOSPITAL_STAFF_ROLES
            and caller.hospital == consult.hospital
            and not caller.is_join_link
        )

    @staticmethod
    def _require_host(caller: Identity, consult: ConsultView) -> None:
        participant = consult.participant_of(caller.hospital, caller.sub)
        if participant is None or not participant.is_host or participant.removed:
            raise Forbidden("Only the host may do this")
        if consult.state is ConsultState.ENDED:
            transition(consult.state, consult.state)


def _about(participant: ParticipantView) -> dict[str, Any]:
    """A participant as a webhook names them: ids and role, never their name."""
    return {
        "participant_id": participant.id,
        "role": participant.role.value,
        "participant_hospital": participant.hospital,
        "is_host": participant.is_host,
    }
