"""Where a request comes from: the peer, or behind a trusted proxy its ``X-Forwarded-For``."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from signaling.context import services

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str | None, proxies: Sequence[Network]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == network.version and ip in network for network in proxies)


def forwarded_client(
    peer: str | None, forwarded_for: list[str], proxies: Sequence[Network]
) -> str | None:
    """The client's address: ``peer`` unless it is a trusted proxy; then the nearest address of
    ``X-Forwarded-For`` (read from the right) that is not a trusted proxy itself.

    A hop that is not an address ends the walk: what lies left of it was written by someone we
    do not trust, so the last trusted hop is the answer.

    :param peer: the address of the TCP peer.
    :param forwarded_for: the values of every ``X-Forwarded-For`` header, in order.
    :param proxies: the trusted proxies (``TELECONSULT_TRUSTED_PROXIES``).
    """
    if not _trusted(peer, proxies):
        return peer
    client = peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _trusted(hop, proxies):
            return hop
    return client


def client_address(request: web.Request) -> str | None:
    """The address of the client that sent ``request`` (audit log, rate limits, access log).

    ``X-Forwarded-For`` counts only when the peer is a proxy ``TELECONSULT_TRUSTED_PROXIES``
    names; anyone else could write any address there.
    """
    proxies = services(request).settings.trusted_proxies
    if not proxies:
        return request.remote
    return forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", []), proxies)
