"""The recordings catalogue: rows of recordings, their review, and each hospital's policy."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from config.database import Database
from rooms.errors import InvalidPayload
from rooms.models import Participant, TimelineEvent, utcnow
from rooms.views import TimelineEntry

from .errors import RecordingNotFound
from .manifest import Manifest
from .models import Recording, RecordingComment, RecordingPolicy, RecordingReview, RecordingScore

logger = logging.getLogger(__name__)

#: The rubric of a hospital that did not configure its own.
DEFAULT_RUBRIC = (
    "Patient identity confirmed",
    "Consent and privacy respected",
    "History and examination",
    "Clear explanation and shared decision",
    "Communication and courtesy",
)
#: Timeline kinds that record the patient's consent or its withdrawal.
CONSENT_KINDS = ("recording_consent", "recording_consent_withdrawn")


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
    :param participant_doctor: Only consults this doctor (subject) was invited to.
    """

    hospital: str | None = None
    consult_id: str | None = None
    doctor: str | None = None
    kind: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    participant_doctor: str | None = None


@dataclass(frozen=True)
class Policy:
    """A hospital's recording policy."""

    hospital: str
    retention_days: int
    rubric: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "hospital": self.hospital,
            "retention_days": self.retention_days,
            "rubric": list(self.rubric),
        }


class RecordingCatalogue:
    """
    Stores and finds recordings, reviews, timed comments and policies (callers authorise).

    :param database: Where they are stored.
    :param default_retention_days: Retention of hospitals without a policy of their own.
    """

    def __init__(self, database: Database, default_retention_days: int) -> None:
        self._database = database
        self._default_retention_days = default_retention_days

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

    async def list(self, where: RecordingFilter, limit: int = 200) -> list[RecordingView]:
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
        if where.participant_doctor is not None:
            query = query.join(Participant, Participant.consult_id == Recording.consult_id).where(
                Participant.sub == where.participant_doctor, Participant.role == "doctor"
            )
        async with self._database.sessions() as session:
            return [RecordingView.of(row) for row in await session.scalars(query.limit(limit))]

    async def took_part(self, consult_id: str, sub: str) -> bool:
        """
        Whether `sub` was invited to the consult as a doctor.

        :param consult_id: The consult.
        :param sub: The subject.
        """
        async with self._database.sessions() as session:
            found = await session.scalar(
                select(Participant.id).where(
                    Participant.consult_id == consult_id,
                    Participant.sub == sub,
                    Participant.role == "doctor",
                )
            )
            return found is not None

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

    # --- review ------------------------------------------------------------------------------

    async def add_review(
        self,
        recording_id: str,
        reviewer_sub: str,
        reviewer_name: str,
        scores: Mapping[str, int],
        comment: str,
        rubric: Sequence[str],
    ) -> dict[str, Any]:
        """
        Store a scoring of a recording: one score (1–5) per rubric criterion, and a comment.

        :param scores: ``{criterion: score}``; every criterion of the rubric, no other.
        :param rubric: The hospital's criteria.
        :raises InvalidPayload: when criteria are missing or unknown, or a score is out of range.
        """
        errors = [
            {"field": f"scores.{name}", "message": "not a criterion of this hospital's rubric"}
            for name in scores
            if name not in rubric
        ]
        errors += [
            {"field": f"scores.{name}", "message": "a score is needed"}
            for name in rubric
            if name not in scores
        ]
        errors += [
            {"field": f"scores.{name}", "message": "must be 1 to 5"}
            for name, value in scores.items()
            if not 1 <= value <= 5
        ]
        if errors:
            raise InvalidPayload("The scores do not match the rubric", details=errors)
        review = RecordingReview(
            recording_id=recording_id,
            reviewer_sub=reviewer_sub,
            reviewer_name=reviewer_name,
            comment=comment,
            created_at=utcnow(),
        )
        async with self._database.transaction() as session:
            session.add(review)
            await session.flush()
            for criterion in rubric:
                session.add(
                    RecordingScore(
                        review_id=review.id, criterion=criterion, score=scores[criterion]
                    )
                )
        return _review_dict(review, [(c, scores[c]) for c in rubric])

    async def reviews(self, recording_id: str) -> list[dict[str, Any]]:
        """
        Every scoring of a recording, oldest first.

        :param recording_id: The recording.
        """
        async with self._database.sessions() as session:
            reviews = list(
                await session.scalars(
                    select(RecordingReview)
                    .where(RecordingReview.recording_id == recording_id)
                    .order_by(RecordingReview.created_at)
                )
            )
            scores = list(
                await session.scalars(
                    select(RecordingScore)
                    .where(RecordingScore.review_id.in_([r.id for r in reviews]))
                    .order_by(RecordingScore.id)
                )
            )
        return [
            _review_dict(r, [(s.criterion, s.score) for s in scores if s.review_id == r.id])
            for r in reviews
        ]

    async def add_comment(
        self, recording_id: str, author_sub: str, author_name: str, offset: float, text: str
    ) -> dict[str, Any]:
        """
        Pin a comment to a time offset of a recording.

        :param offset: Seconds from the start of the recording.
        :param text: The comment.
        """
        comment = RecordingComment(
            recording_id=recording_id,
            author_sub=author_sub,
            author_name=author_name,
            offset_seconds=offset,
            text=text,
            created_at=utcnow(),
        )
        async with self._database.transaction() as session:
            session.add(comment)
        return _comment_dict(comment)

    async def comments(self, recording_id: str) -> list[dict[str, Any]]:
        """
        The timed comments of a recording, in the order of their offsets.

        :param recording_id: The recording.
        """
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(RecordingComment)
                .where(RecordingComment.recording_id == recording_id)
                .order_by(RecordingComment.offset_seconds, RecordingComment.created_at)
            )
            return [_comment_dict(row) for row in rows]

    # --- policies ----------------------------------------------------------------------------

    async def policy(self, hospital: str) -> Policy:
        """
        A hospital's policy, or the defaults when it has none.

        :param hospital: The hospital.
        """
        async with self._database.sessions() as session:
            row = await session.get(RecordingPolicy, hospital)
        if row is None:
            return Policy(hospital, self._default_retention_days, DEFAULT_RUBRIC)
        return Policy(hospital, row.retention_days, tuple(row.rubric or DEFAULT_RUBRIC))

    async def set_policy(
        self, hospital: str, retention_days: int, rubric: Sequence[str], by: str
    ) -> Policy:
        """
        Set a hospital's retention and rubric.

        :param by: The admin's subject.
        """
        async with self._database.transaction() as session:
            row = await session.get(RecordingPolicy, hospital)
            if row is None:
                row = RecordingPolicy(hospital_id=hospital)
                session.add(row)
            row.retention_days, row.rubric = retention_days, list(rubric)
            row.updated_at, row.updated_by = utcnow(), by
        return Policy(hospital, retention_days, tuple(rubric))

    async def expired(self, now: datetime, hospital: str | None = None) -> list[RecordingView]:
        """
        Finished recordings older than their hospital's retention.

        :param now: The current time.
        :param hospital: Only this hospital's.
        """
        finished = await self.with_status("complete", "recovered", "failed")
        policies: dict[str, Policy] = {}
        expired = []
        for recording in finished:
            if hospital is not None and recording.hospital != hospital:
                continue
            if recording.hospital not in policies:
                policies[recording.hospital] = await self.policy(recording.hospital)
            keep = timedelta(days=policies[recording.hospital].retention_days)
            if recording.started_at + keep <= now:
                expired.append(recording)
        return expired

    # --- the consult's timeline ---------------------------------------------------------------

    async def timeline(self, consult_id: str) -> list[TimelineEntry]:
        """
        The timeline of a recording's consult, oldest first (callers authorise).

        :param consult_id: The consult.
        """
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.consult_id == consult_id)
                .order_by(TimelineEvent.at, TimelineEvent.id)
            )
            return [TimelineEntry.of(row) for row in rows]

    async def consent(self, consult_id: str) -> TimelineEntry | None:
        """
        The patient's consent to recording, if it is on record and was not withdrawn since.

        :param consult_id: The consult.
        """
        async with self._database.sessions() as session:
            row = await session.scalar(
                select(TimelineEvent)
                .where(
                    TimelineEvent.consult_id == consult_id, TimelineEvent.kind.in_(CONSENT_KINDS)
                )
                .order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc())
                .limit(1)
            )
        if row is None or row.kind != "recording_consent":
            return None
        return TimelineEntry.of(row)


def _review_dict(review: RecordingReview, scores: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "id": review.id,
        "reviewer": {"sub": review.reviewer_sub, "name": review.reviewer_name},
        "scores": [{"criterion": c, "score": s} for c, s in scores],
        "comment": review.comment,
        "created_at": review.created_at.isoformat(),
    }


def _comment_dict(comment: RecordingComment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "author": {"sub": comment.author_sub, "name": comment.author_name},
        "offset": comment.offset_seconds,
        "text": comment.text,
        "created_at": comment.created_at.isoformat(),
    }
