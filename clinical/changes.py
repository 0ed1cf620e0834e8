"""Committed changes of a consult's clinical documents, told to whoever listens (the edge)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Change = Literal["created", "updated", "signed", "amended", "reviewed", "delivered"]


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """A change of a clinical document that was committed; it names the document, never its text.

    :param consult_id: the consult the document belongs to.
    :param document: ``note`` or ``prescription``.
    :param id: the document changed (for ``amended``, the new amendment).
    :param change: what happened to it (``delivered``: the hospital's record store has it).
    """

    consult_id: str
    document: str
    id: str
    change: Change

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "consult_id": self.consult_id,
            "document": self.document,
            "id": self.id,
            "change": self.change,
        }


ChangeListener = Callable[[DocumentChange], Awaitable[None]]


class ChangeFeed:
    """Tells every listener of each committed change, in the order they subscribed."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` after every committed change."""
        self._listeners.append(listener)

    async def publish(self, change: DocumentChange) -> None:
        """Tell the listeners; one that fails is logged, since the change is committed anyway."""
        for listener in self._listeners:
            try:
                await listener(change)
            except Exception:
                logger.exception(
                    "a listener of clinical changes failed",
                    extra={"consult_id": change.consult_id, "change": change.change},
                )
