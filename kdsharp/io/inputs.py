"""Checks shared by every reader: the input path exists, is a file and is not empty; and the one
warning for the unsupported files found in a folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kdsharp.console import warn
from kdsharp.errors import InputError

NOT_REGULAR = "is not a regular file or folder (a device, pipe or socket)"


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
        raise InputError(path, f"is a folder, not {'an' if what[0].lower() in 'aeiou' else 'a'} {what}", folder_fix)
    if not path.is_file():
        raise InputError(path, NOT_REGULAR, f"pass {'an' if what[0].lower() in 'aeiou' else 'a'} {what} file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty", empty_fix)
    return path


def warn_skipped(folder: Path, skipped: list[Path], kept: str) -> None:
    """One warning for the unsupported files found in ``folder``: how many of each type, and
    examples; ``kept`` says what is used instead (e.g. 'only images and videos are sharpened')."""
    if not skipped:
        return
    kinds = Counter(p.suffix.lower() or "(no extension)" for p in skipped)
    what = ", ".join(f"{n} {ext}" for ext, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    examples = ", ".join(str(p.relative_to(folder)) for p in sorted(skipped)[:3])
    more = ", ..." if len(skipped) > 3 else ""
    fix = "; convert GIFs to PNG or MP4 (e.g. ffmpeg -i in.gif in.mp4)" if ".gif" in kinds else ""
    warn(
        f"{folder}: skipped {len(skipped)} unsupported file{'s' * (len(skipped) != 1)} ({what}: "
        f"{examples}{more}): {kept}{fix}"
    )
