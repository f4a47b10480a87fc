"""Checks shared by every reader: the input path exists, is a file and is not empty."""

from __future__ import annotations

from pathlib import Path

from kdsharp.errors import InputError


def existing_file(
    path: str | Path, what: str, folder_fix: str | None = None, empty_fix: str = "re-export or remove it"
) -> Path:
    """``path`` as a Path if it is a non-empty file; else a one-line :class:`InputError` naming it.

    Args:
        what: the kind of file expected, for the message ('image', 'video', 'weights file').
        folder_fix / empty_fix: the fix suggested when ``path`` is a folder / an empty file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file", "check the path")
    if path.is_dir():
        raise InputError(path, f"is a folder, not {'an' if what[0] in 'aeiou' else 'a'} {what}", folder_fix)
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty", empty_fix)
    return path
