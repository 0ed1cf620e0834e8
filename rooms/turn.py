"""TURN credentials that expire: the TURN REST API convention coturn's ``use-auth-secret`` checks.

The username is ``"<expiry unix time>:<participant id>"`` and the credential is
``base64(HMAC-SHA1(secret, username))``; coturn recomputes it from its ``static-auth-secret``
and refuses a username whose expiry has passed. Nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from rooms.hospitals import IceSettings


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """A username and credential for the TURN servers of one join.

    :param username: ``"<expiry>:<participant id>"``.
    :param credential: the password coturn expects for the username.
    :param expires_at: the expiry (Unix time), also the username's first part.
    """

    username: str
    credential: str
    expires_at: int


def turn_credentials(secret: str, participant_id: str, expires_at: int) -> TurnCredentials:
    """The credentials of ``participant_id`` valid until ``expires_at`` (Unix time)."""
    username = f"{expires_at}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode(), expires_at)


def turns_first(urls: list[str]) -> list[str]:
    """The URLs with ``turns:`` ones (TLS, which firewalls allowing only 443 let through) first."""
    return sorted(urls, key=lambda url: not url.startswith("turns:"))


@dataclass(frozen=True)
class IceDefaults:
    """The environment's ICE settings: what a hospital without ICE settings of its own uses.

    :param servers: ``RTCIceServer`` dicts given to every browser (STUN, static TURN).
    :param turn_urls: TURN URLs given with short-lived credentials.
    :param turn_secret: the secret those credentials are made from (coturn's
        ``static-auth-secret``).
    :param credential_seconds: how long credentials are valid after the consult's start.
    """

    servers: list[dict[str, Any]]
    turn_urls: list[str]
    turn_secret: str | None
    credential_seconds: int


@dataclass(frozen=True)
class JoinIce:
    """What a joining browser needs for its peer connections.

    :param servers: its ``iceServers``.
    :param transport_policy: its ``iceTransportPolicy``: ``all``, or ``relay`` (TURN only).
    """

    servers: list[dict[str, Any]]
    transport_policy: str = "all"


def join_ice(
    defaults: IceDefaults, hospital: IceSettings | None, participant_id: str, starts_at: float
) -> JoinIce:
    """The ICE servers of one participant's join: the hospital's (with its TURN secret, or the
    environment's) when its record gives URLs, else the environment's; TURN credentials valid
    until ``credential_seconds`` after ``starts_at`` (the later of now and the scheduled start).
    """
    secret = defaults.turn_secret
    if hospital is not None and (hospital.stun_urls or hospital.turn_urls):
        servers = [{"urls": list(hospital.stun_urls)}] if hospital.stun_urls else []
        turn_urls = list(hospital.turn_urls)
        secret = hospital.turn_secret or secret
    else:
        servers = [dict(server) for server in defaults.servers]
        turn_urls = list(defaults.turn_urls)
    if turn_urls and secret:
        credentials = turn_credentials(
            secret, participant_id, int(starts_at) + defaults.credential_seconds
        )
        turn: dict[str, Any] = {
            "urls": turns_first(turn_urls),
            "username": credentials.username,
            "credential": credentials.credential,
        }
        servers.insert(0, turn)
    relay = hospital is not None and hospital.relay_only
    return JoinIce(servers, "relay" if relay else "all")
