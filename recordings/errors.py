"""Refusals of recording and review requests, with stable codes (mapped at the edge)."""

from __future__ import annotations

from rooms.errors import DomainError


class RecordingNotFound(DomainError):
    code, status = "recording_not_found", 404


class RecordingDeleted(DomainError):
    code, status = "recording_deleted", 410


class RecordingFileNotFound(DomainError):
    code, status = "recording_file_not_found", 404


class RecordingForbidden(DomainError):
    code, status = "recording_forbidden", 403


class ReviewForbidden(DomainError):
    code, status = "review_forbidden", 403


class AdminRequired(DomainError):
    code, status = "admin_required", 403


class ConsentRequired(DomainError):
    code, status = "consent_required", 409


class AlreadyRecording(DomainError):
    code, status = "already_recording", 409


class NotRecording(DomainError):
    code, status = "not_recording", 409


class ConsentWithdrawn(DomainError):
    code, status = "consent_withdrawn", 409
