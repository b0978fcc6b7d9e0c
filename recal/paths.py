"""Checks that a folder a run or a command will write can be created, before any work starts.

A folder under a regular file, or in a folder the user may not write, would otherwise fail
with an OSError traceback after minutes of data loading or training — or, for a run folder,
only when the first checkpoint is saved.
"""

from __future__ import annotations

import os
from pathlib import Path

from recal.errors import InvalidOptionError


def creatable_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be used as a folder to write into, or None when it can.

    Pure check, nothing is created: an existing ``folder`` must be a writable folder;
    otherwise its closest existing parent must be a writable folder.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            return f"{folder} is a regular file, not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{folder} is not writable"
        return None
    parent = folder.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"it is under the regular file {parent}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"its parent folder {parent} is not writable"
    return None


def ensure_creatable(folder: Path, what: str) -> None:
    """Raise :class:`InvalidOptionError` naming ``what`` and ``folder`` when ``folder`` cannot be written.

    ``what`` says which folder it is, e.g. ``"output folder"`` or ``"run folder"``.
    """
    problem = creatable_problem(Path(folder))
    if problem is not None:
        raise InvalidOptionError(f"{what} {folder} cannot be created: {problem}")


def make_folder(folder: Path, what: str) -> Path:
    """Create ``folder`` (and its parents) or raise :class:`InvalidOptionError` saying why not."""
    folder = Path(folder)
    ensure_creatable(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a full disk, or a race with another process
        raise InvalidOptionError(f"{what} {folder} cannot be created: {error.strerror or error}") from error
    return folder
