"""Headers every answer carries: no caching of health data, no referrer, a strict CSP."""

from __future__ import annotations

from aiohttp import web

from signaling.context import services
from signaling.errors import Handler
from signaling.origins import connect_sources

#: The page talks only to its own origin (REST and Socket.IO's WebSocket: ``'self'`` covers
#: ``ws:``/``wss:`` of the same host), and to the cluster's other nodes where they have other
#: origins (``{connect}``); media come from the camera, the peer connection and the server's
#: own recordings.
CSP_TEMPLATE = (
    "default-src 'self'; connect-src {connect}; media-src 'self' blob: mediastream:; "
    "img-src 'self' data: blob:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
#: The policy of a node whose cluster has one origin.
CONTENT_SECURITY_POLICY = CSP_TEMPLATE.format(connect=connect_sources([]))
#: Camera, microphone and screen for this origin only; nothing else a consult has no use for.
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), display-capture=(self), fullscreen=(self), "
    "geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), midi=()"
)
#: A year: browsers that once reached the server over https never try http again.
HSTS = "max-age=31536000"
JSON_TYPES = ("application/json", "application/problem+json")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Add the security headers; JSON answers (consults, timelines, chat, clinical documents,
    refusals) are never stored by a browser or a proxy; HSTS when the public URL is https."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect or a refusal aiohttp raised: same headers
        _add(request, exc)
        raise
    _add(request, response)
    return response


def _add(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Referrer-Policy", "no-referrer")  # join links hold tokens
    headers.setdefault("X-Content-Type-Options", "nosniff")
    origins = services(request).settings.cluster_origins
    headers.setdefault(
        "Content-Security-Policy", CSP_TEMPLATE.format(connect=connect_sources(origins))
    )
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    if response.content_type in JSON_TYPES:
        headers.setdefault("Cache-Control", "no-store")
    if services(request).settings.base_url().startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
