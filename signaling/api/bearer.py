"""The caller of a REST request, from its ``Authorization: Bearer`` header."""

from __future__ import annotations

from aiohttp import web

from rooms.errors import TokenMissing
from rooms.identity import Identity
from signaling.context import services


def caller(request: web.Request) -> Identity:
    """The verified identity behind the request.

    :raises TokenMissing: without a bearer token; the verifier's errors for a bad one.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenMissing("An Authorization: Bearer token is needed")
    return services(request).verifier.verify(token.strip())
