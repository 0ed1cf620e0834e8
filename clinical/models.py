"""Clinical tables: notes, prescriptions, allergies, and the SQL record store."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from config.database import Base, UTCDateTime
from rooms.models import new_id, utcnow


class SignedDocument:
    """The columns every signed clinical document has: its consult and patient, its author,
    where it stands (draft, signed, …), and once signed the frozen document and its signature.

    Each table names its author as the document does (``author_key``: ``author_sub`` or
    ``prescriber_sub``); in Python the columns are ``author_sub`` and ``author_name`` for all.
    """

    #: What this kind of document calls its author, in its columns and in its signed form.
    author_key: ClassVar[str] = "author"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consult_id: Mapped[str] = mapped_column(
        ForeignKey("consults.id", ondelete="CASCADE"), index=True
    )
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_sub: Mapped[str] = mapped_column(String(128), index=True)
    patient_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_document: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signature: Mapped[str | None] = mapped_column(String(128))
    signing_key_id: Mapped[str | None] = mapped_column(String(64))

    @declared_attr
    def author_sub(cls) -> Mapped[str]:
        """Who wrote the document (their subject)."""
        return mapped_column(f"{cls.author_key}_sub", String(128), index=True)

    @declared_attr
    def author_name(cls) -> Mapped[str]:
        """Who wrote the document (their name, as shown)."""
        return mapped_column(f"{cls.author_key}_name", String(200))


class ConsultationNote(SignedDocument, Base):
    """One version of a doctor's consultation note (SOAP and diagnoses) for a consult.

    A draft changes as the doctor types; signing freezes it. An amendment is a new row that
    names the version it amends (``amends_id``) and why (``amendment_reason``).
    """

    __tablename__ = "consultation_notes"

    version: Mapped[int] = mapped_column(Integer, default=1)
    amends_id: Mapped[str | None] = mapped_column(ForeignKey("consultation_notes.id"))
    amendment_reason: Mapped[str | None] = mapped_column(Text)
    subjective: Mapped[str] = mapped_column(Text, default="")
    objective: Mapped[str] = mapped_column(Text, default="")
    assessment: Mapped[str] = mapped_column(Text, default="")
    plan: Mapped[str] = mapped_column(Text, default="")
    diagnoses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Prescription(SignedDocument, Base):
    """An e-prescription of a consult: items, safety override, pharmacist review."""

    __tablename__ = "prescriptions"
    author_key = "prescriber"

    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    safety_findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    override_reason: Mapped[str | None] = mapped_column(Text)
    reviewer_sub: Mapped[str | None] = mapped_column(String(128))
    reviewer_name: Mapped[str | None] = mapped_column(String(200))
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PatientAllergy(Base):
    """A substance a patient is known to be allergic to, as the hospital recorded it."""

    __tablename__ = "patient_allergies"
    __table_args__ = (UniqueConstraint("hospital_id", "patient_sub", "substance_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_sub: Mapped[str] = mapped_column(String(128), index=True)
    substance_code: Mapped[str] = mapped_column(String(64))
    substance_name: Mapped[str] = mapped_column(String(200))
    reaction: Mapped[str | None] = mapped_column(String(200))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordEncounter(Base):
    """SQL record store: the encounter (virtual visit) a consult became in the medical record."""

    __tablename__ = "record_encounters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_sub: Mapped[str] = mapped_column(String(128), index=True)
    encounter_class: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordNote(Base):
    """SQL record store: a signed consultation note version, with its signature."""

    __tablename__ = "record_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    encounter_id: Mapped[str] = mapped_column(ForeignKey("record_encounters.id"), index=True)
    amends_id: Mapped[str | None] = mapped_column(String(36))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(128))
    signing_key_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordPrescription(Base):
    """SQL record store: a signed prescription, with its signature and review outcome."""

    __tablename__ = "record_prescriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    encounter_id: Mapped[str] = mapped_column(ForeignKey("record_encounters.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(128))
    signing_key_id: Mapped[str] = mapped_column(String(64))
    review: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
