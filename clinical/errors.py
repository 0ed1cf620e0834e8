"""Errors of the clinical record: values with a stable code, mapped to HTTP problems at the edge."""

from __future__ import annotations

from rooms.errors import DomainError


class NoteNotFound(DomainError):
    code, status = "note_not_found", 404


class PrescriptionNotFound(DomainError):
    code, status = "prescription_not_found", 404


class DocumentSigned(DomainError):
    """A signed document is immutable: change it with an amendment."""

    code, status = "document_signed", 409


class NotSigned(DomainError):
    """The action needs a signed document (amend, review)."""

    code, status = "not_signed", 409


class AlreadyReviewed(DomainError):
    code, status = "already_reviewed", 409


class SafetyCheckFailed(DomainError):
    """Allergy or duplicate-drug findings block signing unless the doctor overrides them."""

    code, status = "safety_check_failed", 409
