"""Empty output folders for timed runs, without deleting files just before one.

On an ext4 file system without a journal, a new file's inode is not taken from those freed in
the last minute or more: each creation walks past them. A run started right after deleting the last run's
heatmaps, or one whose renames replace them (--overwrite), pays system time per image that a first run
into an empty folder does not (bench/README.md, "Session 10"). A timed run's previous output is therefore
moved aside, which frees nothing, and what was set aside is deleted after the measurements.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

SET_ASIDE = ".set_aside"


def set_aside(folder: Path) -> Path | None:
    """Move `folder` into `SET_ASIDE` beside it (same file system: a rename); its new path, or None if none was."""
    if not folder.exists():
        return None
    trash = folder.parent / SET_ASIDE
    trash.mkdir(exist_ok=True)
    moved = trash / f"{folder.name}-{uuid.uuid4().hex[:8]}"
    folder.rename(moved)
    return moved


def empty_set_aside(parent: Path) -> int:
    """Delete what `set_aside` moved out of the folders in `parent`; the number of folders deleted."""
    trash = parent / SET_ASIDE
    if not trash.exists():
        return 0
    folders = sum(1 for _ in trash.iterdir())
    shutil.rmtree(trash)
    return folders
