"""Crash recovery of a recording's folder: complete the manifest a killed recorder left behind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .manifest import Manifest, complete_track
from .recorder import RecordingLock, remove_lock, utc_iso


def folder_busy(folder: Path) -> bool:
    """
    True while a live process holds the lock of a recording's folder (it records into it).

    :param folder: The recording's folder (it may not exist).
    """
    if not folder.exists():
        return False
    lock = RecordingLock(folder)
    if not lock.acquire():
        return True
    lock.release()
    return False


def recover_folder(folder: Path) -> Manifest | None:
    """
    Complete the manifest of a recording whose recorder died: every track's duration, size
    and hash, the stop time (the last write to a track), status ``recovered``.

    Blocking (it hashes the files): run it in a thread.

    :param folder: The recording's folder, with its manifest.
    :return: The manifest (as found, when it was already complete), or None while another
        live process holds the folder's lock.
    """
    lock = RecordingLock(folder)
    if not lock.acquire():
        return None
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
