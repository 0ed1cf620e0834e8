"""Errors of the consult domain: values with a stable code, mapped at the edge."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the user should see: a stable ``code``, a message and an HTTP status.

    :param message: a human-readable explanation (never clinical text or secrets).
    :param details: optional structured details (field errors).
    """

    code = "error"
    status = 400

    def __init__(self, message: str, details: Any | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidPayload(DomainError):
    code, status = "invalid_payload", 422


class Unauthenticated(DomainError):
    code, status = "unauthenticated", 401


class Forbidden(DomainError):
    code, status = "forbidden", 403


class ConsultNotFound(DomainError):
    code, status = "consult_not_found", 404


class ParticipantNotFound(DomainError):
    code, status = "participant_not_found", 404


class NotInvited(DomainError):
    code, status = "not_invited", 403


class ParticipantRemoved(DomainError):
    code, status = "participant_removed", 403


class ConsultEnded(DomainError):
    code, status = "consult_ended", 409


class InvalidTransition(DomainError):
    code, status = "invalid_transition", 409


class NotInLobby(DomainError):
    code, status = "not_in_lobby", 409


class OutboxEntryNotFound(DomainError):
    code, status = "outbox_entry_not_found", 404


class OutboxEntryNotFailed(DomainError):
    """Only an entry that has given up may be retried by hand."""

    code, status = "outbox_entry_not_failed", 409


# Refusals of a token: identity tokens and join links (signaling), playback links (recordings).


class TokenMissing(DomainError):
    code, status = "token_missing", 401


class TokenInvalid(DomainError):
    code, status = "token_invalid", 401


class TokenExpired(DomainError):
    code, status = "token_expired", 401


class TokenNotYetValid(DomainError):
    code, status = "token_not_yet_valid", 401


class IssuerNotTrusted(DomainError):
    """The token's issuer is trusted, but not to assert the hospital the token names."""

    code, status = "issuer_not_trusted", 401


class IdentityTokenRequired(DomainError):
    """A join link was presented where only the holder's own identity token may act."""

    code, status = "identity_token_required", 401


class WrongConsult(DomainError):
    """A join link was presented to another consult than the one it opens."""

    code, status = "wrong_consult", 403
