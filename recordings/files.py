"""The recordings' folders: one per recording, with its manifest, track files and rendition."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from media.recording import Manifest

from .catalogue import RecordingView
from .errors import RecordingFileNotFound


class RecordingFiles:
    """
    Where each recording's files are, and the reads and deletions of them.

    :param directory: Where recordings' folders are (one folder per recording).
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def folder(self, recording_id: str) -> Path:
        """
        The folder of a recording.

        :param recording_id: The recording.
        """
        return self._directory / recording_id

    async def manifest(self, recording_id: str) -> Manifest:
        """
        The manifest of a recording, from its folder.

        :param recording_id: The recording.
        """
        return await asyncio.to_thread(Manifest.load, self.folder(recording_id))

    async def file(self, recording: RecordingView, name: str) -> Path:
        """
        One file of a recording: a track of its manifest, or its review rendition.

        :param recording: The recording.
        :param name: The file's name.
        :raises RecordingFileNotFound: for another name, or a file missing from the folder.
        """
        manifest = await self.manifest(recording.id)
        known = {t.name for t in manifest.tracks} | {recording.rendition_file}
        path = self.folder(recording.id) / name
        if name not in known or not path.is_file():
            raise RecordingFileNotFound("No such file in this recording")
        return path

    async def remove(self, recording_id: str) -> None:
        """
        Delete a recording's folder and everything in it (nothing happens when it is gone).

        :param recording_id: The recording.
        :raises OSError: when the storage refuses to delete some of it.
        """
        await asyncio.to_thread(_remove_tree, self.folder(recording_id))


def _remove_tree(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
