"""Resume tokens: a dropped participant takes their seat back on a new connection.

The server mints one with every join (and refreshes it while the participant stays), for one
participant of one consult. It is signed, not stored, so it survives a restart of the server; it
is short-lived, so a leaked one soon stops working; it never outlives the token the participant
joined with (its ``until``); and it is signed with a key of its own (derived from the
deployment's secret), so it is never mistaken for an identity token.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import jwt

from rooms.errors import DomainError
from rooms.identity import Identity, Role

logger = logging.getLogger(__name__)

_AUDIENCE = "teleconsult-resume"
_ALGORITHM = "HS256"


class ResumeRefused(DomainError):
    """The resume token is forged, malformed, or for another participant or consult."""

    code, status = "resume_refused", 403


class ResumeExpired(DomainError):
    """The resume token is too old: the seat is gone, join again."""

    code, status = "resume_expired", 401


@dataclass(frozen=True, slots=True)
class Seat:
    """What a resume token stands for: one participant of one consult, and who they are."""

    consult_id: str
    participant_id: str
    identity: Identity


class ResumeTokens:
    """
    Mints and checks resume tokens.

    :param secret: The deployment's signing secret (a key of its own is derived from it).
    :param ttl_seconds: How long a token is valid; the server refreshes it well before.
    """

    def __init__(self, secret: str, ttl_seconds: float) -> None:
        self._key = hashlib.sha256(b"teleconsult resume tokens\x00" + secret.encode()).digest()
        self.ttl_seconds = ttl_seconds

    def mint(self, seat: Seat) -> str:
        """
        A token that lets `seat`'s participant resume it on a new connection.

        :param seat: The participant's seat.
        """
        identity = seat.identity
        claims: dict[str, Any] = {
            "aud": _AUDIENCE,
            "consult": seat.consult_id,
            "participant": seat.participant_id,
            "sub": identity.sub,
            "name": identity.name,
            "role": identity.role.value,
            "hospital": identity.hospital,
            "exp": int(time.time() + self.ttl_seconds),
        }
        if identity.expires_at is not None:
            claims["until"] = identity.expires_at
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def seat(self, token: str) -> Seat:
        """
        The seat a token stands for; its identity works only inside that consult.

        :param token: A resume token.
        :raises ResumeExpired: when it is too old.
        :raises ResumeRefused: when it is forged or malformed.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["exp", "consult", "participant", "sub", "role", "hospital"]},
            )
            consult_id = str(claims["consult"])
            until = claims.get("until")
            identity = Identity(
                sub=str(claims["sub"]),
                name=str(claims.get("name") or claims["sub"]),
                role=Role(claims["role"]),
                hospital=str(claims["hospital"]),
                consult_id=consult_id,
                expires_at=float(until) if until is not None else None,
            )
        except jwt.ExpiredSignatureError as exc:
            raise ResumeExpired("The seat was given up: join again") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            logger.info("resume token refused", extra={"reason": type(exc).__name__})
            raise ResumeRefused("The resume token is not valid") from exc
        if identity.expires_at is not None and identity.expires_at < time.time():
            raise ResumeExpired("The link you joined with has expired: open a new one")
        return Seat(consult_id, str(claims["participant"]), identity)

    def check(self, token: str, holder: Identity, consult_id: str) -> Seat:
        """
        The seat `holder` resumes in `consult_id` with `token`.

        :param token: A resume token.
        :param holder: Who presents it (the connection's identity).
        :param consult_id: The consult they want back into.
        :raises ResumeExpired: when it is too old.
        :raises ResumeRefused: when it is not valid, or is someone else's or another consult's.
        """
        seat = self.seat(token)
        mine = (seat.identity.sub, seat.identity.hospital) == (holder.sub, holder.hospital)
        if not mine or seat.consult_id != consult_id:
            logger.warning("resume token of another participant refused")
            raise ResumeRefused("This resume token is not yours")
        return seat
