"""An admin's view of the outbox, whatever the kind (record store, webhook): the entries of
their hospital, and a retry of a failed one."""

from __future__ import annotations

from outbox.errors import EntryNotFailed, EntryNotFound
from outbox.models import OutboxEntry
from outbox.queue import Outbox
from rooms.errors import Forbidden, OutboxEntryNotFailed, OutboxEntryNotFound
from rooms.identity import Identity, Role


class OutboxAdmin:
    """The outbox as the routes of ``/api/outbox`` serve it: admins only, their hospital only.

    :param outbox: the outbox.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def entries(
        self, caller: Identity, status: str | None = None, limit: int = 200
    ) -> list[OutboxEntry]:
        """The entries of the admin's hospital, newest first.

        :raises Forbidden: for anyone but an admin.
        """
        _require_admin(caller)
        return await self._outbox.entries(caller.hospital, status, limit)

    async def retry(self, caller: Identity, entry_id: str) -> OutboxEntry:
        """Put a failed entry back in the queue with a fresh count of attempts.

        :raises Forbidden: for anyone but an admin.
        :raises OutboxEntryNotFound: for an unknown entry or one of another hospital.
        :raises OutboxEntryNotFailed: when the entry has not failed.
        """
        _require_admin(caller)
        try:
            return await self._outbox.retry(entry_id, caller.hospital)
        except EntryNotFound:
            raise OutboxEntryNotFound("No such outbox entry") from None
        except EntryNotFailed:
            raise OutboxEntryNotFailed("Only a failed entry can be retried") from None


def _require_admin(caller: Identity) -> None:
    if caller.role is not Role.ADMIN:
        raise Forbidden("Only an admin sees the outbox")
