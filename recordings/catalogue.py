"""The recordings catalogue: one row per recording, found by consult, doctor, kind and time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from config.database import Database
from media.recording import Manifest
from rooms.models import utcnow

from .errors import RecordingNotFound
from .models import Recording


@dataclass(frozen=True)
class RecordingView:
    """A recording as the rest of the server sees it."""

    id: str
    consult_id: str
    hospital: str
    doctor_sub: str
    doctor_name: str
    kind: str
    title: str
    started_at: datetime
    stopped_at: datetime | None
    started_by: str
    duration: float | None
    size: int | None
    status: str
    consent: dict[str, Any]
    rendition_status: str
    rendition_progress: int
    rendition_file: str | None

    @classmethod
    def of(cls, row: Recording) -> RecordingView:
        """The view of a row."""
        return cls(
            row.id,
            row.consult_id,
            row.hospital_id,
            row.doctor_sub,
            row.doctor_name,
            row.kind,
            row.title,
            row.started_at,
            row.stopped_at,
            row.started_by,
            row.duration_seconds,
            row.size_bytes,
            row.status,
            dict(row.consent or {}),
            row.rendition_status,
            row.rendition_progress,
            row.rendition_file,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "consult_id": self.consult_id,
            "hospital": self.hospital,
            "doctor": {"sub": self.doctor_sub, "name": self.doctor_name},
            "kind": self.kind,
            "title": self.title,
            "started_at": self.started_at.isoformat(),
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "started_by": self.started_by,
            "duration": self.duration,
            "size": self.size,
            "status": self.status,
            "consent": self.consent,
            "rendition": {
                "status": self.rendition_status,
                "progress": self.rendition_progress,
                "file": self.rendition_file,
            },
        }


@dataclass(frozen=True)
class RecordingFilter:
    """
    What to list.

    :param hospital: Only this hospital's recordings.
    :param consult_id: Only this consult's.
    :param doctor: Only consults hosted by this doctor (subject).
    :param kind: ``visit``, ``referral`` or ``conference``.
    :param started_from: Started at or after.
    :param started_to: Started before.
    :param consult_ids: Only these consults (a subquery of their ids, from rooms).
    """

    hospital: str | None = None
    consult_id: str | None = None
    doctor: str | None = None
    kind: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    consult_ids: Select[str] | None = None


class RecordingCatalogue:
    """
    Stores and finds recordings (callers authorise).

    :param database: Where they are stored.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    async def create(self, row: Recording) -> RecordingView:
        """
        Add a recording that just started.

        :param row: The new row.
        """
        async with self._database.transaction() as session:
            session.add(row)
        return RecordingView.of(row)

    async def get(self, recording_id: str) -> RecordingView:
        """
        A recording by id.

        :raises RecordingNotFound: for an unknown id.
        """
        async with self._database.sessions() as session:
            row = await session.get(Recording, recording_id)
            if row is None:
                raise RecordingNotFound("No such recording")
            return RecordingView.of(row)

    async def latest_of_consult(self, consult_id: str) -> RecordingView | None:
        """
        The consult's most recently started recording, if any.

        :param consult_id: The consult.
        """
        async with self._database.sessions() as session:
            row = await session.scalar(
                select(Recording)
                .where(Recording.consult_id == consult_id)
                .order_by(Recording.started_at.desc())
                .limit(1)
            )
            return RecordingView.of(row) if row is not None else None

    async def with_status(self, *statuses: str) -> list[RecordingView]:
        """
        Every recording in one of `statuses`.

        :param statuses: Recording statuses.
        """
        async with self._database.sessions() as session:
            rows = await session.scalars(select(Recording).where(Recording.status.in_(statuses)))
            return [RecordingView.of(row) for row in rows]

    async def pending_renditions(self) -> list[RecordingView]:
        """Recordings whose review rendition waits or was interrupted."""
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(Recording).where(
                    Recording.rendition_status.in_(("pending", "running")),
                    Recording.status.in_(("complete", "recovered")),
                )
            )
            return [RecordingView.of(row) for row in rows]

    async def search(self, where: RecordingFilter, limit: int = 200) -> list[RecordingView]:
        """
        Recordings matching `where`, newest first (deleted ones included, with their status).

        :param where: The filter.
        :param limit: At most this many.
        """
        query = select(Recording).order_by(Recording.started_at.desc())
        if where.hospital is not None:
            query = query.where(Recording.hospital_id == where.hospital)
        if where.consult_id is not None:
            query = query.where(Recording.consult_id == where.consult_id)
        if where.doctor is not None:
            query = query.where(Recording.doctor_sub == where.doctor)
        if where.kind is not None:
            query = query.where(Recording.kind == where.kind)
        if where.started_from is not None:
            query = query.where(Recording.started_at >= where.started_from)
        if where.started_to is not None:
            query = query.where(Recording.started_at < where.started_to)
        if where.consult_ids is not None:
            query = query.where(Recording.consult_id.in_(where.consult_ids))
        async with self._database.sessions() as session:
            return [RecordingView.of(row) for row in await session.scalars(query.limit(limit))]

    async def finish(self, recording_id: str, manifest: Manifest, status: str) -> None:
        """
        Record the outcome of a stopped (or recovered) recording; its rendition is now due.

        :param recording_id: The recording.
        :param manifest: Its complete manifest.
        :param status: ``complete`` or ``recovered``.
        """
        async with self._database.transaction() as session:
            row = await session.get(Recording, recording_id)
            if row is None:
                raise RecordingNotFound("No such recording")
            row.status = status
            row.stopped_at = (
                datetime.fromisoformat(manifest.stopped_at) if manifest.stopped_at else utcnow()
            )
            row.duration_seconds = round(manifest.duration, 3)
            row.size_bytes = manifest.bytes
            has_video = any(t.kind == "video" and t.frames for t in manifest.tracks)
            has_audio = any(t.kind == "audio" and t.frames for t in manifest.tracks)
            row.rendition_status = "pending" if has_video or has_audio else "none"
            row.rendition_progress = 0

    async def set_status(self, recording_id: str, status: str) -> None:
        """
        Set a recording's status (``failed``, ``deleted``).

        :param recording_id: The recording.
        :param status: The new status.
        """
        async with self._database.transaction() as session:
            row = await session.get(Recording, recording_id)
            if row is not None:
                row.status = status
                if status == "deleted":
                    row.deleted_at = utcnow()
                    row.rendition_file = None

    async def set_rendition(
        self, recording_id: str, status: str, progress: int, file: str | None = None
    ) -> None:
        """
        Store the progress of a recording's review rendition.

        :param recording_id: The recording.
        :param status: ``pending``, ``running``, ``ready`` or ``failed``.
        :param progress: Percent done.
        :param file: The rendition's file name, once ready.
        """
        async with self._database.transaction() as session:
            row = await session.get(Recording, recording_id)
            if row is not None and row.status != "deleted":
                row.rendition_status, row.rendition_progress = status, progress
                if file is not None:
                    row.rendition_file = file
