"""Tables of recordings and their review: the catalogue, scores, timed comments, policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base, UTCDateTime
from rooms.models import new_id, utcnow

#: Statuses of a recording.
RECORDING_STATUSES = ("recording", "complete", "recovered", "failed", "deleted")
#: Statuses of a recording's review rendition.
RENDITION_STATUSES = ("pending", "running", "ready", "failed", "none")


class Recording(Base):
    """One recording of a consult (from a start to a stop), stored as a folder of files."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consult_id: Mapped[str] = mapped_column(
        ForeignKey("consults.id", ondelete="CASCADE"), index=True
    )
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    doctor_sub: Mapped[str] = mapped_column(String(128), index=True)
    doctor_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(128))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), index=True)
    consent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rendition_status: Mapped[str] = mapped_column(String(16), default="none")
    rendition_progress: Mapped[int] = mapped_column(Integer, default=0)
    rendition_file: Mapped[str | None] = mapped_column(String(64))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordingReview(Base):
    """A reviewer's scoring of a recording against the hospital's rubric, with a comment."""

    __tablename__ = "recording_reviews"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    reviewer_sub: Mapped[str] = mapped_column(String(128))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordingScore(Base):
    """The score (1–5) of one rubric criterion in a review."""

    __tablename__ = "recording_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[str] = mapped_column(
        ForeignKey("recording_reviews.id", ondelete="CASCADE"), index=True
    )
    criterion: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)


class RecordingComment(Base):
    """A reviewer's comment pinned to a time offset of a recording."""

    __tablename__ = "recording_comments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    author_sub: Mapped[str] = mapped_column(String(128))
    author_name: Mapped[str] = mapped_column(String(200))
    offset_seconds: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordingPolicy(Base):
    """A hospital's recording policy: how long recordings are kept, and its review rubric."""

    __tablename__ = "recording_policies"

    hospital_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    retention_days: Mapped[int] = mapped_column(Integer)
    rubric: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))
