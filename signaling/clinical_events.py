"""Socket.IO events of the clinical record: ``clinical_updated`` to a consult's participants."""

from __future__ import annotations

from clinical.changes import DocumentChange
from signaling.context import Services
from signaling.protocol import consult_room


def forward_clinical_changes(services: Services) -> None:
    """Emit ``clinical_updated`` to the consult's joined participants after every committed
    change of one of its notes or prescriptions (docs/protocol.md, "Clinical record").

    The event names the document and what happened to it, never its text: the page fetches the
    record over REST, which audits the read.
    """

    async def emit(change: DocumentChange) -> None:
        await services.sio.emit(
            "clinical_updated", change.as_dict(), room=consult_room(change.consult_id)
        )

    services.clinical.changes.subscribe(emit)
