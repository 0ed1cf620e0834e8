"""Retention: recordings older than their hospital's policy are deleted, hourly, each audited."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from rooms.audit import AuditLog, AuditRecord

from .access import system_identity
from .catalogue import RecordingCatalogue, RecordingView
from .files import RecordingFiles
from .policies import Policy, RecordingPolicies

logger = logging.getLogger(__name__)

#: Seconds between two retention sweeps.
RETENTION_INTERVAL = 3600.0


class Retention:
    """
    Deletes the recordings their hospital's policy no longer keeps.

    :param catalogue: The recordings.
    :param policies: The hospitals' retention.
    :param files: The recordings' folders.
    :param audit: The access audit log (each deletion is audited).
    """

    def __init__(
        self,
        catalogue: RecordingCatalogue,
        policies: RecordingPolicies,
        files: RecordingFiles,
        audit: AuditLog,
    ) -> None:
        self._catalogue = catalogue
        self._policies = policies
        self._files = files
        self._audit = audit

    async def expired(self, now: datetime, hospital: str | None = None) -> list[RecordingView]:
        """
        Finished recordings older than their hospital's retention.

        :param now: The current time.
        :param hospital: Only this hospital's.
        """
        finished = await self._catalogue.with_status("complete", "recovered", "failed")
        policies: dict[str, Policy] = {}
        expired = []
        for recording in finished:
            if hospital is not None and recording.hospital != hospital:
                continue
            if recording.hospital not in policies:
                policies[recording.hospital] = await self._policies.policy(recording.hospital)
            keep = timedelta(days=policies[recording.hospital].retention_days)
            if recording.started_at + keep <= now:
                expired.append(recording)
        return expired

    async def apply(self, now: datetime, hospital: str | None = None) -> list[str]:
        """
        Delete the recordings older than their hospital's retention; audit each deletion.

        :param now: The current time.
        :param hospital: Only this hospital's recordings.
        :return: The ids of the deleted recordings.
        """
        deleted = []
        for recording in await self.expired(now, hospital):
            policy = await self._policies.policy(recording.hospital)
            await self._files.remove(recording.id)
            await self._catalogue.set_status(recording.id, "deleted")
            await self._audit.record(
                system_identity(recording.hospital, "retention"),
                AuditRecord(
                    "delete", "recording", recording.id, recording.consult_id, recording.hospital
                ),
                detail={"reason": "retention", "retention_days": policy.retention_days},
            )
            deleted.append(recording.id)
            logger.info("recording deleted by retention", extra={"recording_id": recording.id})
        return deleted

    async def run(self) -> None:
        """Sweep now and then every :data:`RETENTION_INTERVAL` seconds, until cancelled.

        A failed sweep raises: the process's supervisor runs it again after a pause.
        """
        while True:
            await self.apply(datetime.now(UTC))
            await asyncio.sleep(RETENTION_INTERVAL)
