"""Refusals of the outbox's admin operations (the owner of the route turns them into problems)."""

from __future__ import annotations


class EntryNotFound(Exception):
    """No such entry in the hospital that asks."""


class EntryNotFailed(Exception):
    """Only an entry that has given up may be retried by hand."""
