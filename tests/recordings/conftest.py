"""Fixtures of the recordings tests: the integration tests' fresh database (SQLite, PostgreSQL)."""

from tests.integration.conftest import database  # noqa: F401
