"""The other origins of a cluster a page may talk to: its signaling follows a redirect to the
consult's media node, whose URL may be another origin than the page's (docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.settings import Settings

#: Socket.IO's check of a connection's Origin header: ``None`` is its default (same origin).
OriginCheck = Callable[[str | None, Mapping[str, Any]], bool] | None

#: The WebSocket twin of each page scheme: CSP does not let ``http:`` stand for ``ws:``.
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def connect_sources(origins: list[str]) -> str:
    """CSP ``connect-src`` of a page: its own origin, and the cluster's other origins over
    HTTP (long-polling) and WebSocket."""
    sources = ["'self'"]
    for origin in origins:
        scheme, rest = origin.split("://", 1)
        sources += [origin, f"{WEBSOCKET_SCHEMES[scheme]}://{rest}"]
    return " ".join(sources)


def socket_origin_check(settings: Settings) -> OriginCheck:
    """Which pages may open a Socket.IO connection here: the same origin, as Socket.IO checks
    by default, and the cluster's listed origins (``TELECONSULT_CLUSTER_ORIGINS``)."""
    allowed = frozenset(settings.cluster_origins)
    if not allowed:
        return None

    def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin in allowed:
            return True
        host = environ.get("HTTP_HOST")
        return origin == f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    return check
