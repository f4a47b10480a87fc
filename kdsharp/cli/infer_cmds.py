"""CLI commands for inference: ``kdsharp sharpen``, ``kdsharp live``, ``kdsharp demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from kdsharp.console import info

DEVICE_HELP = "auto (CUDA if available), cpu or cuda[:N]."
HALF_HELP = (
    "--half: fp16 on CUDA; bf16 on a CPU with bfloat16 instructions (AVX512-BF16, AMX), elsewhere float32 "
    "with a warning. --no-half: float32. Default: bf16 for the RGB U-Nets (student, student_nokd) on such a "
    "CPU (about 1.3x faster, outputs within 2 levels, at most 0.002 dB on held-out photos), float32 otherwise "
    "(fast, the teacher, other CPUs, CUDA)."
)


def _debug() -> bool:
    from kdsharp.cli.state import debug_enabled

    return debug_enabled()


def report_failed_file(src: Path, exc: BaseException, message: str) -> None:
    """A file of a batch failed: its line in command-line words; ``--debug`` adds the traceback,
    and an unexpected error says how to get it."""
    import traceback

    from kdsharp.cli.state import error_text
    from kdsharp.console import error
    from kdsharp.errors import KdsharpError

    if _debug():
        traceback.print_exception(exc)
    if isinstance(exc, KdsharpError):
        message = error_text(exc)
    elif not _debug():
        message += " (run with --debug for the traceback)"
    error(message)


FLAG_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")


def check_stray_flag_values(inputs: list[Path]) -> None:
    """A missing input named ``true`` (or ``yes``, ``1``...) followed a flag such as --overwrite: say so."""
    from kdsharp.errors import InputError

    for p in inputs:
        if str(p).lower() in FLAG_WORDS and not p.exists():
            raise InputError(
                p, "no such file or folder", "flags such as --overwrite take no value: drop the word after the flag"
            )


def warn_reuse_unused(reuse: bool, videos: list) -> None:
    """--reuse was given but these videos ran without it (the teacher, or a backend other than torch)."""
    if reuse and videos:
        from kdsharp.console import plural, warn

        names = ", ".join(Path(v).name for v in videos)
        warn(
            f"--reuse had no effect on {plural(len(videos), 'video')} ({names}): temporal reuse works on luma "
            "models such as fast and convolutional U-Nets such as student (torch backend, no --tile; "
            "student not with --compile)"
        )


def sharpen(
    inputs: list[Path] = typer.Argument(
        ..., help="Images, videos or folders (trees are mirrored).", show_default=False
    ),
    output: str = typer.Option(  # a str: an empty -o "" must not become Path("") == the current folder
        ..., "-o", "--output", help="Output file, or a folder (needed for several inputs or a folder)."
    ),
    model: str = typer.Option(
        "student",
        "--model",
        "-m",
        help="Registry name (student, fast, teacher, ...), checkpoint path, or .onnx file with --backend onnx.",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    backend: str = typer.Option("torch", "--backend", help="torch or onnx (ONNX Runtime)."),
    tile: int | None = typer.Option(
        None,
        "--tile",
        min=16,
        help="Process in N x N tiles (large images, little memory). Tiling also starts by itself on out-of-memory.",
    ),
    tile_overlap: int | None = typer.Option(
        None,
        "--tile-overlap",
        min=0,
        help="Pixels shared by neighbouring tiles (default: 8 of the model's cells, at least 32: 32 for fast, "
        "128 for student).",
        show_default=False,
    ),
    half: bool | None = typer.Option(None, "--half/--no-half", help=HALF_HELP, show_default=False),
    batch: int = typer.Option(1, "--batch", min=1, help="Video frames per forward pass."),
    crf: int | None = typer.Option(
        None,
        "--crf",
        min=0,
        max=63,
        help="Video quality (lower = better) (default: 18 for H.264/H.265, about visually lossless; VP9 24). "
        "On x264's 0-51 scale for mpeg4, which has no CRF: its fixed quantiser of about the same quality "
        "(crf 18 -> q 2, 23 -> 3, 30 -> 9, 51 -> 31; never lossless; default: a bit rate).",
        show_default=False,
    ),
    encoder_preset: str | None = typer.Option(
        None,
        "--encoder-preset",
        help="x264/x265 speed preset, "
        "ultrafast ... veryslow (slower = smaller files; default: veryfast "
        "up to 720p, ultrafast above). Other encoders (mpeg4, VP9) ignore it, with a warning.",
        show_default=False,
    ),
    codec: str | None = typer.Option(
        None, "--codec", help="Video encoder: libx264 (default), libx265, mpeg4, libvpx-vp9 (default for .webm)."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for the model (videos: frames in parallel, one thread each; default: the available cores).",
        show_default=False,
    ),
    reuse: bool = typer.Option(
        False,
        "--reuse",
        help="Videos, fast and student: recompute only the tiles that "
        "changed since the previous frame (within --reuse-tolerance).",
    ),
    reuse_tolerance: int | None = typer.Option(
        None,
        "--reuse-tolerance",
        min=0,
        max=255,
        help="With --reuse: levels a tile's 4x4 cells may change by and the tile still be reused "
        "(default 3: sensor noise and codec flicker count as unchanged; 0: exact; implies --reuse).",
        show_default=False,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (even an input, atomically)."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model (faster after warm-up)."),
):
    """Sharpen images, videos (audio kept) and folders.

    Images keep their format, size, bit depth, grey/alpha, EXIF and dpi and are written upright.
    Videos keep frame count, frame rate, resolution, rotation and audio (10-bit video is written
    8-bit, with a warning). Several inputs or a folder need an output folder. Files that fail
    (corrupt, or a format such as GIF) are reported and skipped: exit code 1; a video that turns
    corrupt or is cut short part way is written up to the last good frame, with a warning naming
    that frame, and also exits 1. A run that cannot start (bad option, missing path, unusable
    output) exits 2. Videos stream through decode, model and encode threads; the luma model
    `fast` works on the Y plane directly (no RGB round trip).
    """
    from kdsharp.infer.sharpener import sharpen_paths

    check_stray_flag_values(inputs)
    reuse = reuse or reuse_tolerance is not None  # a tolerance asks for reuse
    result = sharpen_paths(
        inputs,
        output,
        model=model,
        device=device,
        backend=backend,
        tile=tile,
        tile_overlap=tile_overlap,
        half=half,
        batch=batch,
        compile=compile,
        crf=crf,
        codec=codec,
        overwrite=overwrite,
        threads=threads,
        on_error=report_failed_file,
        preset=encoder_preset,
        reuse=reuse,
        reuse_tolerance=reuse_tolerance,
    )
    for stats in result.videos:
        info(stats.summary())
    warn_reuse_unused(reuse, [s.src for s in result.videos if s.reused is None])
    where = result.where(Path(output))
    info(f"{result.summary()} " + (f"-> {where}" if result.done else f"({where})"))
    if result.failed or result.partial:
        # SystemExit, not typer.Exit: kdsharp.cli.main runs click with standalone_mode=False, which
        # turns typer.Exit into a return value that main() does not pass on.
        raise SystemExit(1)


def live(
    source: str = typer.Option(
        "0", "--source", "-s", help="Camera index (0), video file (read in real time) or stream URL."
    ),
    sink: str = typer.Option(
        "window", "--sink", help="window (preview), virtualcam (pip install pyvirtualcam) or an output video file."
    ),
    model: str = typer.Option(
        "fast", "--model", "-m", help="Registry name, checkpoint or .onnx (with --backend onnx)."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    backend: str = typer.Option("torch", "--backend", help="torch or onnx."),
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Show input | output (key 's' toggles in the window)."
    ),
    max_frames: int | None = typer.Option(
        None,
        "--max-frames",
        min=1,
        help="Stop after N processed frames (default: at the end of the source, or at Ctrl-C).",
        show_default=False,
    ),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=1,
        help="Frames per second to take (a camera: to ask for; a file: at most its own rate, "
        "frames kept at their own time) and to write (default: the source's).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for the model (one model worker each, taking frames in turn; default: the available cores).",
        show_default=False,
    ),
    reuse: bool = typer.Option(
        True,
        "--reuse/--no-reuse",
        help="fast and student: recompute only the tiles that changed since the previous frame.",
    ),
    half: bool | None = typer.Option(None, "--half/--no-half", help=HALF_HELP, show_default=False),
    reuse_tolerance: int | None = typer.Option(
        None,
        "--reuse-tolerance",
        min=0,
        max=255,
        help="Levels a tile's 4x4 cells may change by and the tile still be reused "
        "(default 3: a camera's sensor noise and a codec's flicker count as unchanged; 0: exact).",
        show_default=False,
    ),
    encoder_preset: str | None = typer.Option(
        None,
        "--encoder-preset",
        help="File sink: x264/x265 speed preset, ultrafast ... veryslow (default: ultrafast at every size, "
        "which leaves the cores to the model; slower = smaller files, more frames dropped).",
        show_default=False,
    ),
    crf: int | None = typer.Option(
        None,
        "--crf",
        min=0,
        max=63,
        help="File sink: video quality, lower = better (default: 18 for H.264/H.265, VP9 24).",
        show_default=False,
    ),
):
    """Sharpen a webcam / file / stream in real time, dropping frames rather than falling behind.

    Shows a preview window (with FPS and latency), feeds a virtual camera for call apps, or
    writes a file at the source's frame rate (each frame at its capture time, with the source's
    audio). Prints processed/dropped frames and mean latency at the end. Ctrl-C stops: the
    output file is finished with the frames so far and the summary is printed.
    """
    from kdsharp.infer.live import run_live

    stats = run_live(
        source,
        sink,
        model=model,
        device=device,
        backend=backend,
        side_by_side=side_by_side,
        max_frames=max_frames,
        fps=fps,
        overwrite=overwrite,
        threads=threads,
        reuse=reuse,
        reuse_tolerance=reuse_tolerance,
        encoder_preset=encoder_preset,
        crf=crf,
        half=half,
    )
    info(stats.summary())
    if stats.partial:
        from kdsharp.console import warn

        warn(stats.partial)
        raise SystemExit(1)  # as `sharpen` does for a video that turned corrupt part way


def demo(
    out_dir: str = typer.Option(  # a str: an empty -o "" must not become Path("") == the current folder
        "kdsharp-demo",
        "-o",
        "--output",
        help="Folder for the demo files (created if missing; a run-N subfolder when it holds earlier ones).",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace earlier demo files instead of using a fresh run-N subfolder."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for the model (default: the available cores).", show_default=False
    ),
):
    """Sharpen a degraded video-call clip with the shipped student and show the gain.

    Writes degraded.mp4 (with audio), sharpened.mp4, side_by_side.mp4, before_after.png and
    report.json and prints the PSNR/SSIM gain over the clean frames. A run stopped part way (Ctrl-C)
    removes the files it wrote.
    """
    from kdsharp.infer.demo import run_demo

    info("building a degraded video-call clip and sharpening it with the shipped student...")
    result = run_demo(out_dir, model="student", device=device, overwrite=overwrite, threads=threads)
    info(result.summary())


def register(app: typer.Typer) -> None:
    """Add ``sharpen``, ``live`` and ``demo`` to ``app``."""
    app.command("sharpen", no_args_is_help=True)(sharpen)
    app.command("live")(live)
    app.command("demo")(demo)
