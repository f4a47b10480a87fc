"""User-facing errors.

Every problem a user can fix (a missing file, a corrupt image, an unknown model name, an
unwritable folder) is raised as :class:`KdsharpError` with a one-line message that names the
thing and the fix. The CLI prints that line and exits non-zero; ``--debug`` shows the traceback.

The library speaks of its own parameters, never of command-line flags: a message writes a setting
as ``name=value`` (``tile=64 must be larger than tile_overlap=96``, ``pass overwrite=True``) and
lists those names in ``params``; the CLI rewrites them into its flags (``--tile 64``,
``--overwrite``), see :func:`kdsharp.cli.errors.format_error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class KdsharpError(Exception):
    """An error whose message is meant for the user: one line, names the file and the fix.

    ``params``: the library parameters the message names as ``name=value`` (a front end may
    rewrite them into its own words, e.g. command-line flags).
    """

    exit_code = 2

    def __init__(self, message: str = "", *, params: Sequence[str] = ()):
        super().__init__(message)
        self.params = tuple(params)


class _PathError(KdsharpError):
    """An error about one file or folder: ``PATH: problem (fix)``."""

    def __init__(self, path: str | Path, problem: str, fix: str | None = None, *, params: Sequence[str] = ()):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}" + (f" ({fix})" if fix else ""), params=params)


class InputError(_PathError):
    """A bad input file or path (missing, corrupt, empty, wrong format)."""


class OutputError(_PathError):
    """An output that cannot be written (unwritable folder, would overwrite an input)."""


class UnknownModelError(KdsharpError):
    """A model name that is neither registered nor an existing checkpoint path."""

    def __init__(self, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        if name.startswith("peer:"):  # installable peers (kdsharp.evaluate.peers) are compared, not shipped
            hint = "installable peers such as peer:realcugan run only in kdsharp eval and bench; "
        super().__init__(
            f"unknown model '{name}': not a registered name nor an existing file "
            f"({hint}known models: {', '.join(sorted(known))}; or pass a checkpoint path)"
        )


class ConfigError(KdsharpError):
    """A configuration file or override that cannot be used."""


class ModelKwargsError(KdsharpError, TypeError):
    """A keyword a model's constructor does not take (also a ``TypeError``, what Python raises
    for one, so callers that catch that keep working)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a service manager) raised in the main thread like Ctrl-C, so the
    same clean-up runs: no half-written output, and ``kdsharp live`` finishes its recording."""
