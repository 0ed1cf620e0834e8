"""What a deliverer receives, and what it promises: one per kind, registered by its owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox entry to deliver.

    :param kind: which deliverer takes it.
    :param idempotency_key: the same for every attempt of this entry; the receiver dedupes on it.
    :param payload: what was enqueued, unchanged.
    """

    kind: str
    idempotency_key: str
    payload: dict[str, Any]


class Deliverer(Protocol):
    """Takes the entries of a kind to where they go (a record store, a webhook, …)."""

    async def deliver(self, delivery: Delivery) -> None:
        """Deliver one entry; return only once the receiver has acknowledged it.

        Called at least once per entry, possibly again after an acknowledgement was lost.

        :raises Exception: anything, when it was not acknowledged (the outbox retries).
        """
