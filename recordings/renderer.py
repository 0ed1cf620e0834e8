"""The review rendition job: one recording at a time, after it stops, progress in the catalogue."""

from __future__ import annotations

import asyncio
import logging

from .catalogue import RecordingCatalogue
from .files import RecordingFiles
from .rendition import make_rendition

logger = logging.getLogger(__name__)

#: Seconds between two writes of a rendition's progress to the catalogue.
PROGRESS_INTERVAL = 0.5
#: Seconds between two looks for pending renditions while none is queued.
PENDING_SCAN_INTERVAL = 5.0


class Renderer:
    """
    Makes the review renditions of finished recordings, one at a time, in a thread.

    :param catalogue: Where each rendition's status and progress are published.
    :param files: The recordings' folders.
    """

    def __init__(self, catalogue: RecordingCatalogue, files: RecordingFiles) -> None:
        self._catalogue = catalogue
        self._files = files
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    def queue(self, recording_id: str) -> None:
        """
        Make a recording's rendition after those queued before it.

        :param recording_id: A complete or recovered recording.
        """
        if recording_id not in self._queued:
            self._queued.add(recording_id)
            self._queue.put_nowait(recording_id)

    async def run(self) -> None:
        """Make the renditions queued, left due or running (a restart, a crash), or waiting
        after a recording that stopped on another node, until cancelled; a failed rendition is
        marked failed.

        When the catalogue itself fails (the database does not answer) this raises: the
        process's supervisor runs it again after a pause, and it picks up where it stopped.
        """
        while True:
            # Pending renditions are looked for again after each one, and while idle: in a
            # cluster the recording may have stopped on another node (docs/cluster.md).
            for recording in await self._catalogue.pending_renditions():
                self.queue(recording.id)
            try:
                recording_id = await asyncio.wait_for(self._queue.get(), PENDING_SCAN_INTERVAL)
            except TimeoutError:
                continue
            try:
                await self.render(recording_id)
            except Exception as exc:
                logger.warning(
                    "review rendition failed",
                    extra={"recording_id": recording_id, "error": type(exc).__name__},
                    exc_info=exc,
                )
                await self._catalogue.set_rendition(recording_id, "failed", 0)
            finally:
                self._queued.discard(recording_id)

    async def render(self, recording_id: str) -> None:
        """
        Make a recording's review rendition, publishing its progress in the catalogue.

        :param recording_id: A complete or recovered recording.
        """
        recording = await self._catalogue.get(recording_id)
        if recording.status not in ("complete", "recovered") or recording.rendition_status not in (
            "pending",
            "running",
        ):
            return  # deleted meanwhile, or rendered already (by another node)
        manifest = await self._files.manifest(recording_id)
        done = [0.0]
        await self._catalogue.set_rendition(recording_id, "running", 0)
        job = asyncio.ensure_future(
            asyncio.to_thread(
                make_rendition,
                self._files.folder(recording_id),
                manifest,
                lambda share: done.__setitem__(0, share),
            )
        )
        while not job.done():
            await asyncio.wait({job}, timeout=PROGRESS_INTERVAL)
            if not job.done():
                await self._catalogue.set_rendition(recording_id, "running", int(done[0] * 100))
        name = job.result()
        await self._catalogue.set_rendition(recording_id, "ready", 100, name)
