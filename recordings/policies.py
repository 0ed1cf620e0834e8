"""Each hospital's recording policy: how long its recordings are kept, and its review rubric.

The retention of a hospital that has a record (rooms.hospitals) is read from and written to that
record; the rubric, and the retention of a hospital without a record, live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from config.database import Database
from rooms.hospitals import HospitalDirectory
from rooms.models import utcnow

from .models import RecordingPolicy

#: The rubric of a hospital that did not configure its own.
DEFAULT_RUBRIC = (
    "Patient identity confirmed",
    "Consent and privacy respected",
    "History and examination",
    "Clear explanation and shared decision",
    "Communication and courtesy",
)


@dataclass(frozen=True)
class Policy:
    """A hospital's recording policy."""

    hospital: str
    retention_days: int
    rubric: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "hospital": self.hospital,
            "retention_days": self.retention_days,
            "rubric": list(self.rubric),
        }


class RecordingPolicies:
    """
    Stores the hospitals' policies; a hospital without one has the defaults (callers authorise).

    :param database: Where they are stored.
    :param default_retention_days: Retention of hospitals without a policy of their own.
    """

    def __init__(
        self, database: Database, default_retention_days: int, hospitals: HospitalDirectory
    ) -> None:
        self._database = database
        self._default_retention_days = default_retention_days
        self._hospitals = hospitals

    async def policy(self, hospital: str) -> Policy:
        """
        A hospital's policy, or the defaults when it has none.

        :param hospital: The hospital.
        """
        async with self._database.sessions() as session:
            row = await session.get(RecordingPolicy, hospital)
        record = await self._hospitals.get(hospital)
        retention = record.profile.recording.retention_days if record is not None else None
        if row is None:
            return Policy(hospital, retention or self._default_retention_days, DEFAULT_RUBRIC)
        return Policy(
            hospital, retention or row.retention_days, tuple(row.rubric or DEFAULT_RUBRIC)
        )

    async def set_policy(
        self, hospital: str, retention_days: int, rubric: Sequence[str], by: str
    ) -> Policy:
        """
        Set a hospital's retention and rubric.

        :param hospital: The hospital.
        :param retention_days: Days a recording is kept after its start.
        :param rubric: The review criteria.
        :param by: The admin's subject.
        """
        await self._hospitals.set_retention(hospital, retention_days, by)
        async with self._database.transaction() as session:
            row = await session.get(RecordingPolicy, hospital)
            if row is None:
                row = RecordingPolicy(hospital_id=hospital)
                session.add(row)
            row.retention_days, row.rubric = retention_days, list(rubric)
            row.updated_at, row.updated_by = utcnow(), by
        return Policy(hospital, retention_days, tuple(rubric))
