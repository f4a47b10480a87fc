"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or an exception inside the ``with`` block leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kdsharp.errors import InputError, OutputError


def _write_problem(folder: Path) -> str | None:
    """Why no file can be created in ``folder`` (None if one can): permissions, a read-only file
    system, a virtual one such as /proc. Tried with a nameless temporary file, which leaves nothing
    behind (the permission bits alone do not tell: root passes them everywhere)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"is not writable ({e.strerror or e})"
    return None


def ensure_writable_dir(folder: str | Path, target: str | Path | None = None) -> Path:
    """Create ``folder`` (and parents) if needed and check it can be written; returns it.

    ``target``: the file to be written there, named in the error instead of the folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():  # mkdir would say only 'File exists'
        raise OutputError(folder, "exists and is not a folder", "choose another output path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(folder, f"cannot create folder ({e.strerror or e})", "choose a writable output path") from e
    problem = _write_problem(folder)
    if problem is not None:
        fix = "choose a writable output path or fix its permissions"
        if target is not None:
            raise OutputError(target, f"cannot be written: its folder {folder} {problem}", fix)
        raise OutputError(folder, f"folder {problem}", fix)
    return folder


def check_target(
    dst: str | Path, overwrite: bool = False, *, src: str | Path | None = None, folder_checked: bool = False
) -> None:
    """Check once, before any work, that ``dst`` may be written.

    Refuses a missing ``src``, ``dst`` being ``src`` itself or an existing file (unless
    ``overwrite``), and an output folder that cannot be created or written (not looked at again
    when ``folder_checked``: a batch checks each folder once).
    """
    dst = Path(dst)
    if src is not None and not Path(src).exists():
        raise InputError(src, "no such file", "check the path")
    if not overwrite and dst.exists():
        if src is not None and dst.resolve() == Path(src).resolve():
            raise OutputError(
                dst,
                "is the input itself and would be overwritten",
                "choose another output, or pass overwrite=True to replace it in place",
                params=["overwrite"],
            )
        raise OutputError(
            dst, "already exists", "pass overwrite=True to replace it, or choose another output", params=["overwrite"]
        )
    if not folder_checked:
        ensure_writable_dir(dst.parent if str(dst.parent) else Path("."), target=dst)


def _make_folder(folder: Path) -> None:
    """Create ``folder`` if needed (its writability was checked by :func:`check_target`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(folder, f"cannot create folder ({e.strerror or e})", "choose a writable output path") from e


def _set_mode(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the mode a normal ``open()`` would (mkstemp makes it 0600), or ``target``'s own."""
    try:
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
    except OSError:
        pass


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it onto ``target``.

    The temporary name keeps ``target``'s extension (or ``suffix``) so encoders that look at the
    extension (OpenCV, PyAV) pick the right format. On any exception the temporary file is removed
    and the exception propagates; ``target`` is untouched.
    """
    target = Path(target)
    _make_folder(target.parent if str(target.parent) else Path("."))
    ext = suffix if suffix is not None else target.suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{ext}", dir=target.parent)
    except OSError as e:
        raise OutputError(target, f"cannot be written ({e.strerror or e})", "choose a writable output folder") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OutputError(target, "nothing was written", "see the messages above")
        _set_mode(tmp_path, target)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
