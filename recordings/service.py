"""The recordings of this deployment: started and stopped on this process's media, then documents.

:class:`RecordingService` is what the edge holds: it starts and stops recordings (the recorder
itself runs in media/, on the live path), catalogues them, recovers those a crash interrupted,
and gives the edge the catalogue, review, policies, retention, access and playback links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from config.database import Database
from config.settings import Settings
from media import MediaHost, RecordingHandle
from media.recording import Manifest
from media.recording.manifest import MANIFEST_NAME
from media.recording.recorder import utc_iso
from media.recording.recovery import folder_busy, recover_folder
from rooms.audit import AuditLog
from rooms.grants import grants_for
from rooms.hospitals import HospitalDirectory
from rooms.identity import Identity
from rooms.service import ConsultService
from rooms.views import ConsultView, TimelineEntry

from .access import RecordingAccess, system_identity
from .catalogue import RecordingCatalogue, RecordingView
from .errors import AlreadyRecording, NotRecording
from .files import RecordingFiles
from .limits import RecordingLimits
from .links import PlaybackLinks
from .models import Recording
from .policies import RecordingPolicies
from .renderer import Renderer
from .retention import Retention
from .review import RecordingReviews

logger = logging.getLogger(__name__)

#: Timeline kinds that record the patient's consent or its withdrawal.
CONSENT_KINDS = ("recording_consent", "recording_consent_withdrawn")

StopReason = Literal[
    "host",
    "consent_withdrawn",
    "no_recorder_left",
    "max_duration",
    "quota",
    "consult_ended",
    "server_stopped",
]
"""Why a recording stopped: the ``reason`` of its ``recording_stopped`` timeline entry."""

StopListener = Callable[[str, StopReason], Awaitable[None]]
"""Told ``(consult_id, reason)`` once a stopped recording is catalogued (the edge tells clients)."""


@dataclass(frozen=True)
class RunningRecording:
    """
    A recording running on this process, the host who started it, and who may stop it.

    :param recording: Its catalogue entry.
    :param host: Who started it (the catalogue keeps only their subject).
    :param recorders: The participants with the record grant; it stops when none is present.
    """

    recording: RecordingView
    host: Identity
    recorders: frozenset[str]


class RecordingService:
    """
    Starts and stops consult recordings on this process's media, and keeps them as documents.

    :param database: The catalogue's database.
    :param media: This process's media server.
    :param consults: The consults recorded (their participants, timelines).
    :param audit: The access audit log.
    :param files: The recordings' folders.
    :param links: The playback link signer.
    :param default_retention_days: Retention of hospitals without a policy.
    :param limits: How long and how large one recording may grow.
    :param hospitals: The hospitals' records (their retention).
    """

    def __init__(
        self,
        database: Database,
        media: MediaHost,
        consults: ConsultService,
        audit: AuditLog,
        files: RecordingFiles,
        links: PlaybackLinks,
        default_retention_days: int,
        limits: RecordingLimits,
        hospitals: HospitalDirectory,
    ) -> None:
        self.catalogue = RecordingCatalogue(database)
        self.policies = RecordingPolicies(database, default_retention_days, hospitals)
        self.reviews = RecordingReviews(database, self.policies)
        self.access = RecordingAccess(self.catalogue, consults, audit)
        self.files = files
        self.links = links
        self.audit = audit
        self.retention = Retention(self.catalogue, self.policies, files, audit)
        self._renderer = Renderer(self.catalogue, files)
        self._media = media
        self._consults = consults
        self._limits = limits
        self._active: dict[str, RunningRecording] = {}
        self._stopped_by: dict[str, tuple[Identity, StopReason]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._limiters: dict[str, asyncio.Task[None]] = {}
        self._stop_listeners: list[StopListener] = []

    def on_stopped(self, listener: StopListener) -> None:
        """
        Tell `listener` of every stop, whatever stopped the recording, once it is catalogued.

        :param listener: Called with the consult's id and the reason.
        """
        self._stop_listeners.append(listener)

    def active(self, consult_id: str) -> RecordingView | None:
        """
        The recording running in a consult on this process, if any.

        :param consult_id: The consult.
        """
        running = self._active.get(consult_id)
        return running.recording if running else None

    async def latest_consent(self, consult_id: str) -> TimelineEntry | None:
        """
        The patient's latest word on recording: ``recording_consent`` or its withdrawal.

        :param consult_id: The consult.
        """
        latest = await self._consults.latest_events(consult_id, CONSENT_KINDS)
        return latest[0] if latest else None

    async def consent(self, consult_id: str) -> TimelineEntry | None:
        """
        The patient's consent to recording, if it is on record and was not withdrawn since.

        :param consult_id: The consult.
        """
        return _given(await self.latest_consent(consult_id))

    async def withdrawn(self, consult_id: str) -> bool:
        """
        Whether the patient's latest word on recording is a withdrawal (only they can undo it).

        :param consult_id: The consult.
        """
        latest = await self.latest_consent(consult_id)
        return latest is not None and latest.kind == "recording_consent_withdrawn"

    async def state(self, consult_id: str) -> dict[str, Any]:
        """
        The protocol's ``recording_state`` of a consult: running or not, since when, by whom
        (``by`` the host's display name, ``by_sub`` their subject), consent (``withdrawn``: the
        patient's latest word is a withdrawal, which only the patient can undo).

        :param consult_id: The consult.
        """
        return self.state_of(consult_id, await self.latest_consent(consult_id))

    def state_of(self, consult_id: str, latest: TimelineEntry | None) -> dict[str, Any]:
        """
        :meth:`state`, for a caller that read the patient's latest word on recording itself
        (the timeline's latest entry of :data:`CONSENT_KINDS`, or None), with other entries.

        :param consult_id: The consult.
        :param latest: The patient's latest word on recording.
        """
        running = self._active.get(consult_id)
        consent = _given(latest)
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
                "withdrawn": latest is not None and consent is None,
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
                self.files.folder(recording.id), manifest
            )
        except Exception:
            await self.catalogue.set_status(recording.id, "failed")
            raise
        recorders = frozenset(
            p.id
            for p in consult.participants
            if grants_for(p.role, is_host=p.is_host, removed=p.removed, ended=False).record
        )
        self._active[consult.id] = RunningRecording(recording, host, recorders)
        self._watchers[recording.id] = asyncio.create_task(self._watch(consult.id, recorder))
        self._limiters[recording.id] = asyncio.create_task(
            self._enforce_limits(consult.id, recording)
        )
        await self._consults.note(
            consult.id, host, "recording_started", {"recording_id": recording.id, **consent}
        )
        return recording

    async def stop(
        self, actor: Identity, consult_id: str, reason: StopReason = "host"
    ) -> RecordingView:
        """
        Stop the recording of a consult; the catalogue is updated and a rendition queued.

        :param actor: Who stops it (the server itself for a limit).
        :param consult_id: The consult.
        :param reason: Why, for the timeline and the clients.
        :raises NotRecording: when none runs here.
        """
        running = self._active.get(consult_id)
        if running is None:
            raise NotRecording("This consult is not being recorded")
        recording = running.recording
        self._stopped_by.setdefault(recording.id, (actor, reason))
        await self._media.room(consult_id).stop_recording()
        watcher = self._watchers.get(recording.id)
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        return await self.catalogue.get(recording.id)

    async def recorders_present(self, consult_id: str, present: Collection[str]) -> None:
        """
        Stop the consult's recording when none of the participants with the record grant is
        `present` any more: nobody would be left who can stop it.

        :param consult_id: The consult.
        :param present: The ids of the participants present in it now.
        """
        running = self._active.get(consult_id)
        if running is None or running.recorders.intersection(present):
            return
        hospital = running.recording.hospital
        with contextlib.suppress(NotRecording):
            await self.stop(system_identity(hospital, "recorder"), consult_id, "no_recorder_left")

    async def _enforce_limits(self, consult_id: str, recording: RecordingView) -> None:
        """Stop a recording at its maximum duration or size (the watcher cancels the wait)."""
        reason = await self._limits.reached(self.files.folder(recording.id))
        # From here on the stop must run to its end: the watcher no longer cancels this task.
        self._limiters.pop(recording.id, None)
        logger.info(
            "recording limit reached", extra={"recording_id": recording.id, "limit": reason}
        )
        with contextlib.suppress(NotRecording):
            await self.stop(system_identity(recording.hospital, "recorder"), consult_id, reason)

    async def _watch(self, consult_id: str, recorder: RecordingHandle) -> None:
        """Complete the catalogue when a recording stops, however it stops (consult end too)."""
        recording_id = recorder.recording_id
        try:
            manifest = await recorder.finished
            self._active.pop(consult_id, None)
            self._cancel_limiter(recording_id)
            hospital = manifest.consult.get("hospital", "")
            # Not stopped through stop(): the media closed the room, the consult ended.
            actor, reason = self._stopped_by.pop(
                recording_id, (system_identity(hospital, "recorder"), "consult_ended")
            )
            await self.catalogue.finish(recording_id, manifest, "complete")
            await self._consults.note(
                consult_id,
                actor,
                "recording_stopped",
                {
                    "recording_id": recording_id,
                    "duration": round(manifest.duration, 1),
                    "reason": reason,
                },
            )
            self._renderer.queue(recording_id)
        except Exception:
            # The files and their manifest are safe on disk: recovery completes the row later.
            logger.exception("recording not catalogued", extra={"recording_id": recording_id})
            return
        finally:
            self._active.pop(consult_id, None)
            self._watchers.pop(recording_id, None)
            self._cancel_limiter(recording_id)
        for listener in self._stop_listeners:
            try:
                await listener(consult_id, reason)
            except Exception:
                logger.exception("recording stop not announced", extra={"consult_id": consult_id})

    def _cancel_limiter(self, recording_id: str) -> None:
        limiter = self._limiters.pop(recording_id, None)
        if limiter is not None:
            limiter.cancel()

    async def timeline(self, recording: RecordingView) -> list[dict[str, Any]]:
        """
        The recording's consult timeline, each event with its ``offset`` in seconds from the
        start of the recording (callers authorise).

        :param recording: The recording.
        """
        entries = await self._consults.timeline_of(recording.consult_id)
        return [
            {
                **entry.as_dict(),
                "offset": round((entry.at - recording.started_at).total_seconds(), 3),
            }
            for entry in entries
        ]

    async def open_file(
        self,
        who: Identity,
        recording_id: str,
        name: str,
        *,
        ranged: bool,
        via: str,
        client_address: str | None = None,
    ) -> Path:
        """
        One file of a recording, for `who` to stream or download; authorised and audited.

        :param who: The caller: the bearer, or the viewer a playback link was signed for.
        :param recording_id: The recording.
        :param name: The file's name.
        :param ranged: True for a range request (audited ``stream``, else ``download``).
        :param via: ``link`` or ``bearer``, for the audit.
        :param client_address: Where the request came from.
        :raises DomainError: refused, or no such file (audited as refused).
        """
        recording = await self.access.authorise(
            who,
            recording_id,
            "stream" if ranged else "download",
            client_address=client_address,
            detail={"file": name, "via": via},
            check=lambda found: self.files.file(found, name),
        )
        return self.files.folder(recording.id) / name

    async def recover(self) -> list[str]:
        """
        Complete the recordings a crashed process left unfinished and mark them ``recovered``.

        A folder is unfinished when its manifest says ``recording`` and nobody holds its lock;
        a recording without a manifest whose folder nobody holds is lost (``failed``).

        :return: The ids of the recovered recordings.
        """
        recovered = []
        for recording in await self.catalogue.with_status("recording"):
            folder = self.files.folder(recording.id)
            if not (folder / MANIFEST_NAME).exists():
                if not folder_busy(folder):
                    await self.catalogue.set_status(recording.id, "failed")
                    logger.warning("recording lost", extra={"recording_id": recording.id})
                continue
            manifest = await asyncio.to_thread(recover_folder, folder)
            if manifest is None:
                continue
            await self.catalogue.finish(recording.id, manifest, "recovered")
            await self._consults.note(
                recording.consult_id,
                system_identity(recording.hospital, "recovery"),
                "recording_recovered",
                {"recording_id": recording.id, "duration": round(manifest.duration, 1)},
            )
            self._renderer.queue(recording.id)
            recovered.append(recording.id)
            logger.info("recording recovered", extra={"recording_id": recording.id})
        return recovered

    async def continue_recovered(self, consult: ConsultView) -> RecordingView | None:
        """
        The consult's media moved here from a dead node: if its latest recording was running
        there (it is ``recovered`` now), record on here as a new recording, with the same
        consent, started by the same host; the timeline links the two (``recording_continued``).

        :param consult: The consult, just placed on this process.
        :return: The new recording, or None when there is nothing to continue.
        """
        if consult.id in self._active:
            return None
        latest = await self.catalogue.latest_of_consult(consult.id)
        if latest is None or latest.status != "recovered" or await self.withdrawn(consult.id):
            return None
        host = next((p for p in consult.hosts if p.sub == latest.started_by), None)
        if host is None:
            return None
        identity = Identity(host.sub, host.name, host.role, host.hospital)
        recording = await self.start(identity, consult, latest.consent)
        await self._consults.note(
            consult.id,
            system_identity(consult.hospital, "recovery"),
            "recording_continued",
            {"recording_id": recording.id, "continues": latest.id},
        )
        logger.info(
            "recording continued", extra={"recording_id": recording.id, "continues": latest.id}
        )
        return recording

    async def open(self) -> None:
        """At server start: recover the recordings a crash left unfinished."""
        await self.recover()

    def jobs(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """The background jobs of recordings, by name, for the process's supervisor to run:
        review renditions and retention (each loops until cancelled, raises on a fault)."""
        return {"renditions": self._renderer.run, "retention": self.retention.run}

    async def close(self) -> None:
        """At server stop: finish running recordings."""
        for consult_id, running in list(self._active.items()):
            server = system_identity(running.recording.hospital, "recorder")
            with contextlib.suppress(NotRecording):
                await self.stop(server, consult_id, "server_stopped")
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)


def _given(latest: TimelineEntry | None) -> TimelineEntry | None:
    """The patient's latest word on recording if it is an agreement."""
    return latest if latest is not None and latest.kind == "recording_consent" else None


def build_recordings(
    settings: Settings,
    database: Database,
    media: MediaHost,
    consults: ConsultService,
    hospitals: HospitalDirectory,
) -> RecordingService:
    """
    Build the recordings of this deployment from its settings.

    :param settings: This deployment's settings (folder, retention, limits, link lifetime,
        secret).
    :param database: The shared database.
    :param media: This process's media server.
    :param consults: The consult service.
    :param hospitals: The hospitals' records.
    """
    return RecordingService(
        database,
        media,
        consults,
        AuditLog(database),
        RecordingFiles(settings.recordings_dir),
        PlaybackLinks(settings.signing_secret(), settings.recording_link_ttl_seconds),
        settings.recording_retention_days,
        RecordingLimits(settings.recording_max_seconds, settings.recording_quota_bytes),
        hospitals,
    )
