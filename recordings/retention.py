"""Retention: recordings older than their hospital's policy are deleted, hourly, each audited.

A deletion the storage refuses keeps the catalogue entry (its status unchanged) and is tried
again at the next sweep, which comes sooner after a failure.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from rooms.audit import AuditLog, AuditRecord

from .access import system_identity
from .catalogue import RecordingCatalogue, RecordingView
from .files import RecordingFiles
from .policies import Policy, RecordingPolicies

logger = logging.getLogger(__name__)

#: Seconds between two retention sweeps.
RETENTION_INTERVAL = 3600.0
#: Seconds before the next sweep when a deletion failed.
RETRY_INTERVAL = 300.0

RETENTION_SWEEPS = Counter(
    "teleconsult_retention_sweeps_total",
    "Periodic retention sweeps this process ran (one node of a cluster runs them)",
)


@dataclass
class Sweep:
    """
    What one retention sweep did.

    :param deleted: The recordings deleted (files gone, catalogued ``deleted``, audited).
    :param failed: The recordings whose deletion failed; they stay catalogued, for the next sweep.
    """

    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


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

    async def apply(self, now: datetime, hospital: str | None = None) -> Sweep:
        """
        Delete the recordings older than their hospital's retention; audit each deletion.

        :param now: The current time.
        :param hospital: Only this hospital's recordings.
        :return: The recordings deleted, and those whose deletion failed (kept, for later).
        """
        sweep = Sweep()
        for recording in await self.expired(now, hospital):
            policy = await self._policies.policy(recording.hospital)
            try:
                await self._files.remove(recording.id)
            except OSError:
                # Files first, then the entry: a failure leaves an entry the next sweep finds.
                logger.exception("recording deletion failed", extra={"recording_id": recording.id})
                sweep.failed.append(recording.id)
                continue
            await self._catalogue.set_status(recording.id, "deleted")
            await self._audit.record(
                system_identity(recording.hospital, "retention"),
                AuditRecord(
                    "delete", "recording", recording.id, recording.consult_id, recording.hospital
                ),
                detail={"reason": "retention", "retention_days": policy.retention_days},
            )
            sweep.deleted.append(recording.id)
            logger.info("recording deleted by retention", extra={"recording_id": recording.id})
        return sweep

    async def run(self) -> None:
        """Sweep now and then every :data:`RETENTION_INTERVAL` seconds (:data:`RETRY_INTERVAL`
        after a sweep whose deletions the storage refused), until cancelled.

        A sweep that fails as a whole raises: the process's supervisor runs it again after a pause.
        """
        while True:
            sweep = await self.apply(datetime.now(UTC))
            RETENTION_SWEEPS.inc()
            await asyncio.sleep(RETRY_INTERVAL if sweep.failed else RETENTION_INTERVAL)
