"""An unreachable database or Redis is a coded, retryable refusal; a bug is not one."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import IntegrityError, OperationalError

from signaling.errors import as_domain_error


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConnectionRefusedError(111, "refused"), "service_unavailable"),  # PostgreSQL is down
        (OperationalError("SELECT 1", {}, Exception("server closed")), "service_unavailable"),
        (RedisConnectionError("refused"), "service_unavailable"),
        (RedisTimeoutError("Timeout reading from socket"), "service_unavailable"),
        (TimeoutError(), "service_unavailable"),
        (FileNotFoundError(2, "no such file"), "internal_error"),  # a bug, not an outage
        (IntegrityError("INSERT", {}, Exception("duplicate key")), "internal_error"),
        (KeyError("x"), "internal_error"),
    ],
)
def test_outages_are_told_apart_from_failures(exc: Exception, code: str) -> None:
    error = as_domain_error(exc)
    assert error.code == code
    assert error.status == (503 if code == "service_unavailable" else 500)
