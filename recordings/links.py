"""Signed, short-lived playback links: one viewer, one recording, a few minutes.

Browsers cannot put a bearer token on ``<video src>``: the files of a recording are linked with
an ``access`` value instead, signed for the viewer who was authorised to open the recording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from rooms.errors import TokenExpired, TokenInvalid
from rooms.identity import Identity, Role


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PlaybackLinks:
    """
    Signs and checks ``access`` parameters: one viewer, one recording, a few minutes.

    :param secret: The deployment's signing secret (a key is derived from it).
    :param ttl_seconds: How long a link is valid.
    """

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._key = hashlib.sha256(b"teleconsult recording links\x00" + secret.encode()).digest()
        self._ttl = ttl_seconds

    def sign(self, viewer: Identity, recording_id: str) -> str:
        """
        An ``access`` value letting `viewer` fetch the files of one recording.

        :param viewer: Who was authorised to view the recording.
        :param recording_id: The recording.
        """
        claims = {
            "rec": recording_id,
            "sub": viewer.sub,
            "name": viewer.name,
            "role": viewer.role.value,
            "hospital": viewer.hospital,
            "exp": int(time.time()) + self._ttl,
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{signature}"

    def verify(self, access: str, recording_id: str) -> Identity:
        """
        The viewer an ``access`` value stands for, if it is valid for `recording_id`.

        :param access: The value from the link.
        :param recording_id: The recording the link is followed for.
        :raises TokenInvalid: forged, malformed or for another recording.
        :raises TokenExpired: too old.
        """
        body, _, signature = access.partition(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            raise TokenInvalid("The link is not valid")
        try:
            claims = json.loads(_unb64(body))
            viewer = Identity(
                claims["sub"], claims["name"], Role(claims["role"]), claims["hospital"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("The link is not valid") from exc
        if claims.get("rec") != recording_id:
            raise TokenInvalid("The link is for another recording")
        if int(claims.get("exp", 0)) < time.time():
            raise TokenExpired("The link has expired: open the recording again")
        return viewer
