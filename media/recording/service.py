"""Recording of live consults and everything after: catalogue, recovery, renditions, retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.database import Database
from rooms.audit import AuditLog, AuditRecord
from rooms.identity import Identity, Role
from rooms.service import ConsultService
from rooms.views import ConsultView

from ..server import MediaServer
from .catalogue import RecordingCatalogue, RecordingView
from .errors import AlreadyRecording, NotRecording
from .manifest import MANIFEST_NAME, Manifest, complete_track
from .models import Recording
from .recorder import ConsultRecorder, RecordingLock, remove_lock, utc_iso
from .rendition import make_rendition

logger = logging.getLogger(__name__)

#: Seconds between two writes of a rendition's progress to the catalogue.
PROGRESS_INTERVAL = 0.5
#: Seconds between two retention sweeps.
RETENTION_INTERVAL = 3600.0


@dataclass(frozen=True)
class RunningRecording:
    """
    A recording running on this process, and the host who started it.

    :param recording: Its catalogue entry.
    :param host: Who started it (the catalogue keeps only their subject).
    """

    recording: RecordingView
    host: Identity


def system_identity(hospital: str, what: str) -> Identity:
    """
    The server itself, acting on a hospital's recordings (recovery, retention).

    :param hospital: The hospital.
    :param what: What acts, e.g. ``retention``.
    """
    return Identity(f"teleconsult:{what}", f"teleconsult {what}", Role.SERVICE, hospital)


class RecordingService:
    """
    Starts and stops consult recordings on this process's media, and keeps the catalogue.

    :param database: The catalogue's database.
    :param media: This process's media server.
    :param consults: Notes recording events in consult timelines.
    :param audit: The access audit log (retention deletions are audited).
    :param directory: Where recordings' folders are (one folder per recording).
    :param default_retention_days: Retention of hospitals without a policy.
    """

    def __init__(
        self,
        database: Database,
        media: MediaServer,
        consults: ConsultService,
        audit: AuditLog,
        directory: Path,
        default_retention_days: int,
    ) -> None:
        self.catalogue = RecordingCatalogue(database, default_retention_days)
        self.audit = audit
        self._media = media
        self._consults = consults
        self._directory = directory
        self._active: dict[str, RunningRecording] = {}
        self._stopped_by: dict[str, Identity] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._renditions: asyncio.Queue[str] = asyncio.Queue()
        self._background: list[asyncio.Task[None]] = []

    def folder(self, recording_id: str) -> Path:
        """
        The folder of a recording.

        :param recording_id: The recording.
        """
        return self._directory / recording_id

    def active(self, consult_id: str) -> RecordingView | None:
        """
        The recording running in a consult on this process, if any.

        :param consult_id: The consult.
        """
        running = self._active.get(consult_id)
        return running.recording if running else None

    async def state(self, consult_id: str) -> dict[str, Any]:
        """
        The protocol's ``recording_state`` of a consult: running or not, since when, by whom
        (``by`` the host's display name, ``by_sub`` their subject), consent.

        :param consult_id: The consult.
        """
        running = self._active.get(consult_id)
        consent = await self.catalogue.consent(consult_id)
        return {
            "recording": running is not None,
            "recording_id": running.recording.id if running else None,
            "started_at": running.recording.started_at.isoformat() if running else None,
            "by": running.host.name if running else None,
            "by_sub": running.host.sub if running else None,
            "consent": {
                "given": consent is not None,
                "by": consent.actor_name if consent else None,
                "at": consent.at.isoformat() if consent else None,
            },
        }

    async def start(
        self, host: Identity, consult: ConsultView, consent: dict[str, Any]
    ) -> RecordingView:
        """
        Start recording a consult (its host asks; consent was checked by the caller).

        :param host: The host who starts it.
        :param consult: The consult.
        :param consent: How consent was given: ``{method, by, at, reason?}``.
        :raises AlreadyRecording: when a recording runs.
        """
        if consult.id in self._active:
            raise AlreadyRecording("This consult is already being recorded")
        doctor = consult.hosts[0] if consult.hosts else None
        row = Recording(
            consult_id=consult.id,
            hospital_id=consult.hospital,
            doctor_sub=doctor.sub if doctor else host.sub,
            doctor_name=doctor.name if doctor else host.name,
            kind=consult.kind,
            title=consult.title,
            started_at=datetime.now(UTC),
            started_by=host.sub,
            status="recording",
            consent=consent,
            rendition_status="none",
            rendition_progress=0,
        )
        recording = await self.catalogue.create(row)
        manifest = Manifest(
            recording_id=recording.id,
            consult={
                "id": consult.id,
                "kind": consult.kind,
                "hospital": consult.hospital,
                "title": consult.title,
            },
            started_at=utc_iso(recording.started_at),
            started_by={"sub": host.sub, "name": host.name},
            consent=consent,
            participants=[
                {"participant_id": p.id, "sub": p.sub, "name": p.name, "role": p.role.value}
                for p in consult.participants
            ],
        )
        try:
            recorder = self._media.room(consult.id).start_recording(
                self.folder(recording.id), manifest
            )
        except Exception:
            await self.catalogue.set_status(recording.id, "failed")
            raise
        self._active[consult.id] = RunningRecording(recording, host)
        self._watchers[recording.id] = asyncio.create_task(self._watch(consult.id, recorder))
        await self._consults.note(
            consult.id, host, "recording_started", {"recording_id": recording.id, **consent}
        )
        return recording

    async def stop(self, host: Identity, consult_id: str) -> RecordingView:
        """
        Stop the recording of a consult; the catalogue is updated and a rendition queued.

        :param host: Who stops it.
        :param consult_id: The consult.
        :raises NotRecording: when none runs here.
        """
        running = self._active.get(consult_id)
        if running is None:
            raise NotRecording("This consult is not being recorded")
        recording = running.recording
        self._stopped_by[recording.id] = host
        await self._media.room(consult_id).stop_recording()
        watcher = self._watchers.get(recording.id)
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        return await self.catalogue.get(recording.id)

    async def _watch(self, consult_id: str, recorder: ConsultRecorder) -> None:
        """Complete the catalogue when a recording stops, however it stops (consult end too)."""
        recording_id = recorder.recording_id
        try:
            manifest = await recorder.finished
            self._active.pop(consult_id, None)
            actor = self._stopped_by.pop(recording_id, None)
            hospital = manifest.consult.get("hospital", "")
            await self.catalogue.finish(recording_id, manifest, "complete")
            await self._consults.note(
                consult_id,
                actor or system_identity(hospital, "recorder"),
                "recording_stopped",
                {"recording_id": recording_id, "duration": round(manifest.duration, 1)},
            )
            self._renditions.put_nowait(recording_id)
        except Exception:
            # The files and their manifest are safe on disk: recovery completes the row later.
            logger.exception("recording not catalogued", extra={"recording_id": recording_id})
        finally:
            self._active.pop(consult_id, None)
            self._watchers.pop(recording_id, None)

    async def manifest(self, recording_id: str) -> Manifest:
        """
        The manifest of a recording, from its folder.

        :param recording_id: The recording.
        """
        return await asyncio.to_thread(Manifest.load, self.folder(recording_id))

    # --- after a crash -----------------------------------------------------------------------

    async def recover(self) -> list[str]:
        """
        Complete the recordings a crashed process left unfinished and mark them ``recovered``.

        A folder is unfinished when its manifest says ``recording`` and nobody holds its lock.

        :return: The ids of the recovered recordings.
        """
        recovered = []
        for recording in await self.catalogue.with_status("recording"):
            folder = self.folder(recording.id)
            if not (folder / MANIFEST_NAME).exists():
                lock = RecordingLock(folder) if folder.exists() else None
                if lock is None or lock.acquire():
                    await self.catalogue.set_status(recording.id, "failed")
                    logger.warning("recording lost", extra={"recording_id": recording.id})
                continue
            manifest = await asyncio.to_thread(self._recover_folder, folder)
            if manifest is None:
                continue
            await self.catalogue.finish(recording.id, manifest, "recovered")
            await self._consults.note(
                recording.consult_id,
                system_identity(recording.hospital, "recovery"),
                "recording_recovered",
                {"recording_id": recording.id, "duration": round(manifest.duration, 1)},
            )
            self._renditions.put_nowait(recording.id)
            recovered.append(recording.id)
            logger.info("recording recovered", extra={"recording_id": recording.id})
        return recovered

    @staticmethod
    def _recover_folder(folder: Path) -> Manifest | None:
        lock = RecordingLock(folder)
        if not lock.acquire():
            return None  # another live process is recording it
        try:
            manifest = Manifest.load(folder)
            if manifest.status != "recording":
                return manifest
            files = [folder / t.name for t in manifest.tracks if (folder / t.name).exists()]
            last_write = max((path.stat().st_mtime for path in files), default=None)
            for track in manifest.tracks:
                complete_track(folder, track)
            stopped = datetime.fromtimestamp(last_write, UTC) if last_write else datetime.now(UTC)
            manifest.stopped_at = utc_iso(stopped)
            manifest.status = "recovered"
            manifest.save(folder)
            return manifest
        finally:
            lock.release()
            remove_lock(folder)

    # --- review renditions -------------------------------------------------------------------

    async def queue_pending_renditions(self) -> None:
        """Queue the renditions that were due or running when the server stopped."""
        for recording in await self.catalogue.pending_renditions():
            self._renditions.put_nowait(recording.id)

    async def _rendition_worker(self) -> None:
        while True:
            recording_id = await self._renditions.get()
            try:
                await self.render(recording_id)
            except Exception:
                logger.exception("review rendition failed", extra={"recording_id": recording_id})
                await self.catalogue.set_rendition(recording_id, "failed", 0)

    async def render(self, recording_id: str) -> None:
        """
        Make a recording's review rendition, publishing its progress in the catalogue.

        :param recording_id: A complete or recovered recording.
        """
        recording = await self.catalogue.get(recording_id)
        if recording.status not in ("complete", "recovered"):
            return
        manifest = await self.manifest(recording_id)
        done = [0.0]
        await self.catalogue.set_rendition(recording_id, "running", 0)
        job = asyncio.ensure_future(
            asyncio.to_thread(
                make_rendition,
                self.folder(recording_id),
                manifest,
                lambda share: done.__setitem__(0, share),
            )
        )
        while not job.done():
            await asyncio.wait({job}, timeout=PROGRESS_INTERVAL)
            if not job.done():
                await self.catalogue.set_rendition(recording_id, "running", int(done[0] * 100))
        name = job.result()
        await self.catalogue.set_rendition(recording_id, "ready", 100, name)

    # --- retention ---------------------------------------------------------------------------

    async def apply_retention(self, now: datetime, hospital: str | None = None) -> list[str]:
        """
        Delete the recordings older than their hospital's retention; audit each deletion.

        :param now: The current time.
        :param hospital: Only this hospital's recordings.
        :return: The ids of the deleted recordings.
        """
        deleted = []
        for recording in await self.catalogue.expired(now, hospital):
            policy = await self.catalogue.policy(recording.hospital)
            await asyncio.to_thread(shutil.rmtree, self.folder(recording.id), True)
            await self.catalogue.set_status(recording.id, "deleted")
            await self.audit.record(
                system_identity(recording.hospital, "retention"),
                AuditRecord(
                    "delete", "recording", recording.id, recording.consult_id, recording.hospital
                ),
                detail={"reason": "retention", "retention_days": policy.retention_days},
            )
            deleted.append(recording.id)
            logger.info("recording deleted by retention", extra={"recording_id": recording.id})
        return deleted

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.apply_retention(datetime.now(UTC))
            except Exception:
                logger.exception("retention sweep failed")
            await asyncio.sleep(RETENTION_INTERVAL)

    # --- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """At server start: recover crashed recordings, then run renditions and retention."""
        await self.recover()
        await self.queue_pending_renditions()
        self._background = [
            asyncio.create_task(self._rendition_worker()),
            asyncio.create_task(self._retention_loop()),
        ]

    async def close(self) -> None:
        """At server stop: finish running recordings and stop the background work."""
        for consult_id in list(self._active):
            with contextlib.suppress(NotRecording):
                await self._media.room(consult_id).stop_recording()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
