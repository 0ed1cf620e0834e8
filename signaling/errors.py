"""Error mapping, in one place: domain errors become HTTP problems and Socket.IO acks."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from rooms.errors import DomainError, InvalidPayload
from signaling.metrics import REFUSALS

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as ``[{field, message}]``, without echoing the input."""
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


class InternalError(DomainError):
    """The server failed on something unexpected; nothing was changed."""

    code, status = "internal_error", 500


class ServiceUnavailable(DomainError):
    """The database or Redis did not answer; nothing was changed, and trying later may work."""

    code, status = "service_unavailable", 503


#: Exceptions that mean the database or Redis is out of reach (not a bug of ours); a file
#: system's OSError (a missing file, a full disk) is not one.
OUTAGES = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, socket.gaierror)


def is_outage(exc: Exception) -> bool:
    """True when ``exc`` says the database or Redis did not answer."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, OUTAGES)


@contextlib.contextmanager
def outage_tolerated(what: str, **context: Any) -> Iterator[None]:
    """Go on when the database or Redis is out of reach: log that ``what`` (a warning naming
    the exception's class); any other exception propagates.

    :param what: what did not happen, for the log.
    :param context: ids for the log line.
    """
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning(what, extra={**context, "error": type(exc).__name__})


class RateLimited(DomainError):
    """
    Too many requests in a while: try again in ``retry_after`` seconds.

    Sent as ``retry_after`` in the problem (and the ``Retry-After`` header on REST).

    :param message: Which limit was reached (never the caller's data).
    :param retry_after: Whole seconds until a new request would be counted, at least 1.
    """

    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HttpRefusal(DomainError):
    """
    A refusal aiohttp raised itself (an unknown route, a method not allowed), with its code.

    :param exc: aiohttp's exception; its reason, in snake case, is the code.
    """

    def __init__(self, exc: web.HTTPException) -> None:
        super().__init__(exc.reason)
        self.code = exc.reason.lower().replace(" ", "_")
        self.status = exc.status


def as_domain_error(exc: Exception) -> DomainError:
    """The domain error that ``exc`` means (media errors are ones); anything else is internal."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, ValidationError):
        return InvalidPayload("The payload is not valid", details=field_errors(exc))
    if is_outage(exc):
        return ServiceUnavailable("The service is briefly unavailable; try again shortly")
    return InternalError("The server failed; nothing was changed")


def problem_body(error: DomainError) -> dict[str, Any]:
    """The JSON body of a refusal."""
    problem: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        problem["details"] = error.details
    if isinstance(error, RateLimited):
        problem["retry_after"] = error.retry_after
    return {"error": problem}


def log_refusal(where: str, exc: Exception, error: DomainError, **context: Any) -> None:
    """Log a refusal (warning), an outage (warning, its exception's class) or a failure (error,
    with the traceback)."""
    REFUSALS.labels(error.code).inc()
    if isinstance(error, RateLimited):
        return  # signaling.limits logs the first refusal of a flood; the metric counts each.
    extra = {"where": where, "code": error.code, **context}
    if isinstance(error, ServiceUnavailable):
        logger.warning(
            "request failed: a service is out of reach",
            extra={**extra, "error": type(exc).__name__},
        )
    elif error.status >= 500:
        logger.error("request failed", extra=extra, exc_info=exc)
    else:
        logger.warning("request refused", extra=extra)


def ack_error(where: str, exc: Exception, **context: Any) -> dict[str, Any]:
    """The acknowledgement of a refused Socket.IO event."""
    error = as_domain_error(exc)
    log_refusal(where, exc, error, **context)
    return {"ok": False, **problem_body(error)}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every refusal of a route into a JSON problem with a stable code."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return web.json_response(problem_body(HttpRefusal(exc)), status=exc.status)
    except Exception as exc:
        error = as_domain_error(exc)
        log_refusal(f"{request.method} {request.path}", exc, error)
        headers = None
        if isinstance(error, RateLimited):
            headers = {"Retry-After": str(error.retry_after)}
        return web.json_response(problem_body(error), status=error.status, headers=headers)


async def json_body(request: web.Request) -> Any:
    """The request's JSON body, or a coded refusal when it is not JSON."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidPayload("The body is not valid JSON") from exc
