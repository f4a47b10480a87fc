"""Console output shared by every layer: warnings, info lines and rich progress bars.

Messages go to stderr so that stdout stays clean for machine-readable output (``--json``).
"""

from __future__ import annotations

import os
from typing import cast

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


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, 'image')`` -> ``'1 image'``, ``plural(3, 'image')`` -> ``'3 images'`` (``many``: an
    irregular plural)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def quiet() -> bool:
    """True when progress bars should be hidden (``KDSHARP_QUIET=1``)."""
    return os.environ.get("KDSHARP_QUIET", "") not in ("", "0")


def info(msg: str) -> None:
    """Print an informational line to stderr."""
    console.print(escape(msg), soft_wrap=True)


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

    def render(self, task):  # rich's ProgressColumn API
        from rich.text import Text

        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit") or self.unit
        return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


class LineProgress:
    """Progress for a console that is not a terminal (piped, logged): a plain line every ``interval`` s.

    Same calls as rich's ``Progress`` (``add_task``, ``advance``, ``update``, ``remove_task``);
    each line reads ``name: 120/300 frames (40%), 24.1 frames/s, ETA 7 s``, and a last line is
    printed when a task ends.
    """

    def __init__(self, unit: str = "it", interval: float | None = None):
        import time

        self.unit = unit
        self.interval = float(os.environ.get("KDSHARP_PROGRESS_INTERVAL", "10")) if interval is None else interval
        self._clock = time.perf_counter
        self._tasks: dict[int, dict] = {}
        self._next = 0

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        for task in list(self._tasks):
            self.remove_task(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        """A new task; ``completed``: where it starts (a resumed run), not counted in its rate."""
        now = self._clock()
        self._tasks[self._next] = dict(
            description=description,
            total=total,
            completed=completed,
            base=completed,
            start=now,
            last=now,
            unit=fields.get("unit") or self.unit,
        )
        self._next += 1
        return self._next - 1

    def update(
        self,
        task: int,
        total: float | None = None,
        advance: float = 0,
        completed: float | None = None,
        description: str | None = None,
        **fields,
    ) -> None:
        t = self._tasks.get(task)
        if t is None:
            return
        if total is not None:
            t["total"] = total
        if description is not None:
            t["description"] = description
        if completed is not None:
            t["completed"] = completed
        self.advance(task, advance)

    def advance(self, task: int, advance: float = 1) -> None:
        t = self._tasks.get(task)
        if t is None:
            return
        t["completed"] += advance
        now = self._clock()
        if now - t["last"] >= self.interval:
            t["last"] = now
            self._line(t, now)

    def remove_task(self, task: int) -> None:
        t = self._tasks.pop(task, None)
        if (
            t is not None
            and t["completed"] != t["base"]
            and t["completed"] != t.get("printed")
            and self._clock() - t["start"] >= self.interval
        ):
            self._line(t, self._clock(), done=True)

    def _line(self, t: dict, now: float, done: bool = False) -> None:
        n, total, unit = t["completed"], t["total"], t["unit"]
        t["printed"] = n
        rate = (n - t["base"]) / max(now - t["start"], 1e-9)  # this process's pace: a resumed run's steps excluded
        count = f"{n:.0f}/{total:.0f} {unit} ({100 * n / total:.0f}%)" if total else f"{n:.0f} {unit}"
        eta = f", ETA {(total - n) / rate:.0f} s" if total and rate > 0 and not done and n < total else ""
        console.print(escape(f"{t['description']}: {count}, {rate:.1f} {unit}/s{eta}"), soft_wrap=True)


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """A rich Progress with bar, count, rate (``unit``/s), elapsed time and ETA.

    Use as ``with progress("files") as p: t = p.add_task("sharpen", total=n); p.advance(t)``.
    A task may carry its own ``unit`` (``add_task(..., unit="frames")``). Hidden when
    ``KDSHARP_QUIET=1``; when stderr is not a terminal (piped or logged) a :class:`LineProgress`
    prints a plain progress line every 10 s (``KDSHARP_PROGRESS_INTERVAL``) instead of a bar.
    """
    if not quiet() and not console.is_terminal:
        return cast(Progress, LineProgress(unit))  # duck-types the Progress API its callers use
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
