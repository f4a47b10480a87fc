"""Console output shared by every layer: warnings, info lines and rich progress bars.

Messages go to stderr so that stdout stays clean for machine-readable output (``--json``).
"""
from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)


def quiet() -> bool:
    """True when progress bars should be hidden (``KDSHARP_QUIET=1``)."""
    return os.environ.get("KDSHARP_QUIET", "") not in ("", "0")


def info(msg: str) -> None:
    """Print an informational line to stderr."""
    console.print(escape(msg))


def warn(msg: str) -> None:
    """Print a one-line warning to stderr (``warning: ...``)."""
    console.print(f"[yellow]warning:[/yellow] {escape(msg)}", soft_wrap=True)


def error(msg: str) -> None:
    """Print a one-line error to stderr (``error: ...``)."""
    console.print(f"[red]error:[/red] {escape(msg)}", soft_wrap=True)


class RateColumn(TextColumn):
    """Shows items per second with a unit, e.g. ``12.3 frames/s``."""

    def __init__(self, unit: str = "it"):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D401 - rich API
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """A rich Progress with bar, count, rate (``unit``/s), elapsed time and ETA.

    Use as ``with progress("files") as p: t = p.add_task("sharpen", total=n); p.advance(t)``.
    Hidden when ``KDSHARP_QUIET=1``.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=quiet(),
    )
