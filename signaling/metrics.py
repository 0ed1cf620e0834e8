"""Prometheus metrics of the edge, exposed at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SOCKET_CONNECTIONS = Gauge(
    "teleconsult_socket_connections", "Socket.IO connections open on this process"
)
REFUSALS = Counter(
    "teleconsult_refusals_total", "Requests and events refused, by error code", ["code"]
)
CONSULTS_SCHEDULED = Counter("teleconsult_consults_scheduled_total", "Consults scheduled")
