"""How long and how large one recording may grow before the server stops it.

The quota is per recording: what one consult may write, whoever else records at the same time.
The folder as a whole is bounded by the quota times the consults recorded at once, and by
retention; a per-folder quota would let one long consult stop every other consult's recording.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LimitReached = Literal["max_duration", "quota"]
"""Why a limit stopped a recording (the ``reason`` of its ``recording_stopped`` entry)."""


def folder_bytes(folder: Path) -> int:
    """
    The bytes the files of a recording's folder take (its manifest and track files).

    :param folder: The recording's folder; a missing folder takes nothing.
    """
    try:
        with os.scandir(folder) as entries:
            return sum(entry.stat().st_size for entry in entries if entry.is_file())
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class RecordingLimits:
    """
    The limits of one recording.

    :param max_seconds: The longest a recording runs.
    :param quota_bytes: The most its folder may hold.
    :param check_seconds: How often the folder's size is measured.
    """

    max_seconds: float
    quota_bytes: int
    check_seconds: float = 1.0

    async def reached(self, folder: Path) -> LimitReached:
        """
        Wait until the recording written to `folder` reaches a limit (cancel to stop watching).

        :param folder: The recording's folder.
        :return: Which limit it reached.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return "max_duration"
            await asyncio.sleep(min(self.check_seconds, remaining))
            if await asyncio.to_thread(folder_bytes, folder) >= self.quota_bytes:
                return "quota"
