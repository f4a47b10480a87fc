"""What the running command line knows, shared by its command modules: ``--debug`` and the
arguments (so that library errors can be printed in the words of the command that was run)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

DEBUG = False
ARGS: list[str] = []
SIGNALLED = False  # the last command was stopped (or stopped itself) on Ctrl-C or SIGTERM
#: returns the root click command of the ``kdsharp`` app (set by :func:`kdsharp.cli.main`)
ROOT_COMMAND: Callable[[], Any] | None = None


def debug_enabled() -> bool:
    """True when ``--debug`` was given or ``KDSHARP_DEBUG=1`` is set."""
    return DEBUG or os.environ.get("KDSHARP_DEBUG", "") not in ("", "0")


def error_text(e: BaseException) -> str:
    """The one line printed for a library error ``e``: its ``name=value`` settings as this command's flags."""
    from kdsharp.cli.errors import format_error

    return format_error(e, ARGS, ROOT_COMMAND() if ROOT_COMMAND is not None else None)
