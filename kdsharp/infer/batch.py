"""Many inputs -> outputs: plan where each file goes, then sharpen them one by one.

A folder input is mirrored (same tree, same file names); several inputs go into an output
folder. Whole-run problems (a missing input, an unusable output, an output that would overwrite
something) are raised before any work starts (exit 2). A bad file -- corrupt, truncated, or an
unsupported format such as GIF given by name -- is reported in one line and skipped while the
others are processed (exit 1). Unsupported files met inside a folder are listed in one warning.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdsharp.console import error
from kdsharp.console import progress as make_progress
from kdsharp.errors import InputError, KdsharpError, OutputError
from kdsharp.io.atomic import check_target
from kdsharp.io.images import IMAGE_EXTS, is_image_file
from kdsharp.io.inputs import NOT_REGULAR, warn_skipped
from kdsharp.io.video import VIDEO_EXTS, check_audio_fits, check_encoder_options, is_video_file

MEDIA_HINT = f"use an image ({', '.join(IMAGE_EXTS)}) or a video ({', '.join(VIDEO_EXTS)})"
GIF_HINT = "GIF is not supported: convert it to PNG (a still) or MP4 (an animation), e.g. ffmpeg -i in.gif in.mp4"


@dataclass
class BatchResult:
    """Outcome of a run: ``done`` (src, dst) pairs, ``failed`` (src, message) pairs, video stats."""

    done: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    videos: list = field(default_factory=list)  # kdsharp.infer.video.VideoStats
    seconds: float = 0.0
    partial: list[tuple[Path, str]] = field(default_factory=list)  # videos written up to a corrupt part

    @property
    def ok(self) -> bool:
        return not self.failed and not self.partial

    def summary(self) -> str:
        """One line, e.g. ``3 done, 1 failed in 2.1 s`` (``(1 partial)`` after done when a video was cut short)."""
        part = f" ({len(self.partial)} partial)" if self.partial else ""
        return f"{len(self.done)} done{part}, {len(self.failed)} failed in {self.seconds:.1f} s"

    def where(self, output: Path) -> str:
        """Where the outputs went, for the summary line: the file, the folder, or nothing written."""
        if not self.done:
            return "nothing written"
        return str(self.done[0][1] if len(self.done) == 1 and not self.failed else output)


def is_media_file(path: Path) -> bool:
    """True for an image or video extension we handle."""
    return is_image_file(path) or is_video_file(path)


def unsupported_reason(path: Path) -> str:
    """The one-line problem and fix for a file that is neither an image nor a video we handle."""
    if path.suffix.lower() == ".gif":
        return f"unsupported format '.gif' ({GIF_HINT})"
    return f"unsupported file type '{path.suffix or path.name}' ({MEDIA_HINT})"


def _tree(folder: Path, exclude: Path | None, skipped: list[Path] | None = None) -> list[Path]:
    """Media files under ``folder`` (sorted; hidden files/folders and ``exclude``'s tree skipped:
    an output folder inside ``folder`` whose earlier outputs are not inputs).

    Other (unsupported) files are appended to ``skipped``.
    """
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if exclude is not None and exclude in p.resolve().parents:
            continue
        if not is_media_file(p):
            if skipped is not None:
                skipped.append(p)
            continue
        found.append(p)
    return sorted(found)


def _single_file_target(src: Path, output: Path) -> Path:
    if output.is_dir() or str(output).endswith(("/", "\\")) or not output.suffix:
        return output / src.name
    same_kind = is_image_file(output) if is_image_file(src) else is_video_file(output)
    if not same_kind:
        kind = "an image" if is_image_file(src) else "a video"
        exts = IMAGE_EXTS if is_image_file(src) else VIDEO_EXTS
        raise OutputError(
            output,
            f"unsupported output extension '{output.suffix}' for {kind}",
            f"use one of {', '.join(exts)}, or a folder",
        )
    return output


def _check_folder_output(inputs: list[Path], output: Path) -> None:
    """Several outputs need a folder: refuse a file, or a new name with a media extension (``out.png``)."""
    if output.exists() and not output.is_dir():
        raise OutputError(
            output, "is a file, but several outputs need a folder", "pass a folder as output=DIR", params=["output"]
        )
    if not output.exists() and (is_media_file(output) or output.suffix.lower() == ".gif"):
        what = f"{len(inputs)} inputs need" if len(inputs) > 1 else f"the folder {inputs[0]} needs"
        raise OutputError(
            output,
            f"looks like a file name, but {what} an output folder",
            f"pass a folder, e.g. output={output.with_suffix('')}{os.sep}, or sharpen one file at a time",
            params=["output"],
        )


def plan_outputs(
    inputs, output: str | Path, overwrite: bool = False, rejected: list[tuple[Path, str]] | None = None
) -> list[tuple[Path, Path]]:
    """``[(src, dst), ...]`` for ``inputs`` (files and folders) written under/as ``output``.

    Raises :class:`KdsharpError` (one line) for a missing input, an output that is an input or
    already exists (unless ``overwrite``), or an unusable output (a file name such as ``out.png``
    for several inputs). A file given by name that is not an image or video we handle (a GIF, a
    .txt) raises too, unless ``rejected`` is a list: then ``(file, message)`` is appended to it and
    planning goes on. Unsupported files inside folders are left out with one warning per folder.
    """
    if not str(output).strip():  # Path("") would be the current folder
        raise KdsharpError("the output is empty (pass an output file or folder as output=PATH)", params=["output"])
    inputs = [Path(p) for p in inputs]
    output = Path(output)
    if not inputs:
        raise KdsharpError("no input given (pass image/video files or folders)")
    for p in inputs:
        if not p.exists():
            raise InputError(p, "no such file or folder", "check the path")
        if not (p.is_file() or p.is_dir()):
            raise InputError(p, NOT_REGULAR, "pass image or video files or folders")
    media = []
    for p in inputs:
        if p.is_file() and not is_media_file(p):
            msg = f"{p}: {unsupported_reason(p)}"
            if rejected is None:
                raise InputError(p, unsupported_reason(p))
            rejected.append((p, msg))
        else:
            media.append(p)
    if not media:
        return []
    if len(inputs) == 1 and inputs[0].is_file():
        plan = [(inputs[0], _single_file_target(inputs[0], output))]
    else:
        _check_folder_output(inputs, output)
        plan = []
        out_resolved = output.resolve()
        for p in media:
            if p.is_file():
                plan.append((p, output / p.name))
                continue
            base = output if len(inputs) == 1 else output / p.resolve().name
            if base.resolve() == p.resolve() and not overwrite:
                raise OutputError(
                    base,
                    "is the input folder itself, and its files would be overwritten",
                    "choose another output folder, or pass overwrite=True to sharpen them in place",
                    params=["overwrite"],
                )
            inside = p.resolve() in out_resolved.parents  # not read back: its files are earlier outputs
            skipped: list[Path] = []
            files = _tree(p, exclude=out_resolved if inside else None, skipped=skipped)
            if not files:
                raise InputError(p, "contains no images or videos", MEDIA_HINT)
            warn_skipped(p, skipped, "only images and videos are sharpened")
            plan += [(f, base / f.relative_to(p)) for f in files]
    _check_plan(plan, overwrite)
    return plan


def _check_plan(plan: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Each output once, none over an input or an existing file (unless ``overwrite``), every
    output folder writable: all checked once, before any work."""
    seen: dict[Path, Path] = {}
    inputs = {src.resolve(): src for src, _ in plan}
    for src, dst in plan:
        key = dst.resolve()
        if key in seen:
            raise OutputError(dst, f"both {seen[key]} and {src} would be written here", "sharpen them separately")
        if key in inputs and key != src.resolve():  # even with overwrite: it would be read already sharpened
            raise OutputError(dst, f"is an input, and {src} would be written over it", "choose another output folder")
        seen[key] = src
    existing = [] if overwrite else [dst for src, dst in plan if dst.exists() and dst.resolve() != src.resolve()]
    if len(existing) > 1:  # one line for all of them, not one run per file
        raise OutputError(
            existing[0],
            f"already exists (and {len(existing) - 1} more)",
            "pass overwrite=True to replace, or choose another output",
            params=["overwrite"],
        )
    checked: set[Path] = set()
    for src, dst in plan:
        check_target(dst, overwrite, src=src, folder_checked=dst.parent in checked)
        checked.add(dst.parent)
        if is_video_file(src) and src.suffix.lower() != dst.suffix.lower():
            check_audio_fits(src, dst)


def check_video_options(
    plan: list[tuple[Path, Path]], crf: int | None = None, codec: str | None = None, preset: str | None = None
) -> None:
    """The encoder options of a plan's video outputs, checked once before any work (a bad preset, an
    unavailable codec, a crf out of an encoder's range: :class:`OutputError`, exit 2); options that the
    encoders picked do not use (a preset with mpeg4) are named in one warning."""
    videos = [dst for _, dst in plan if is_video_file(dst)]
    if videos and (crf is not None or codec is not None or preset is not None):
        from kdsharp.console import warn

        if note := check_encoder_options(videos, codec, preset, crf):
            warn(note)


def _reject(result: BatchResult, rejected: Sequence[tuple[Path, str]]) -> BatchResult:
    """Record (and print, one line each) the inputs refused before the run."""
    for src, msg in rejected:
        result.failed.append((src, msg))
        error(msg)
    return result


ErrorHandler = Callable[[Path, BaseException, str], None]
"""Called for each file that fails: ``(src, exception, one-line message)``."""


def print_error(src: Path, exc: BaseException, message: str) -> None:
    """The default :data:`ErrorHandler`: print the one-line message."""
    error(message)


def failure_message(src: Path, exc: BaseException) -> str:
    """One line for a file that failed: a :class:`KdsharpError` as it is, anything else with its type."""
    if isinstance(exc, KdsharpError):
        return str(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{src}: failed ({type(exc).__name__}: {first})"


def run_plan(
    sharpener,
    plan: list[tuple[Path, Path]],
    crf: int | None = None,
    codec: str | None = None,
    rejected: Sequence[tuple[Path, str]] = (),
    on_error: ErrorHandler = print_error,
    **video,
) -> BatchResult:
    """Sharpen each ``(src, dst)`` of a plan checked by :func:`plan_outputs`; a failing file is passed
    to ``on_error`` and the run goes on.

    ``rejected`` (from :func:`plan_outputs`) are reported first as failed files. ``video``:
    options of :meth:`Sharpener.video` (``preset``, ``reuse``, ``path``). A single video shows its
    progress in frames (frames/s, ETA), several files in files.
    """
    result = _reject(BatchResult(), rejected)
    start = time.perf_counter()
    single_video = len(plan) == 1 and is_video_file(plan[0][0])
    with make_progress("frames" if single_video else "files") as bar:
        task = None if single_video else bar.add_task("sharpen", total=len(plan), unit="files")
        for src, dst in plan:
            try:
                out = sharpener.process(src, dst, crf=crf, codec=codec, progress=bar, **video)
                result.done.append((src, dst))
                if not isinstance(out, Path):
                    result.videos.append(out)
                    if out.partial:
                        result.partial.append((src, out.partial))
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                msg = failure_message(src, e)
                result.failed.append((src, msg))
                on_error(src, e, msg)
            if task is not None:
                bar.advance(task)
    result.seconds = time.perf_counter() - start
    return result
