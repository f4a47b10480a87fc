"""CLI: ``kdsharp degrade`` - make (degraded input, clean target) pairs from clean images or a video."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdsharp.console import info
from kdsharp.errors import KdsharpError


def degrade_cmd(
    src: Optional[Path] = typer.Argument(None, help="Folder of clean images (searched recursively), one image, "
                                         "or a video file.", show_default=False),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output folder; gets input/ (degraded) and "
                                       "target/ (clean) PNGs with matching names.", show_default=False),
    preset: str = typer.Option("mixed", "--preset", "-p", help="Degradation preset (see --list-presets) or a "
                               "YAML config file."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same pairs."),
    max_images: Optional[int] = typer.Option(None, "--max-images", "-n", help="Stop after this many pairs.",
                                             show_default=False),
    size: Optional[str] = typer.Option(None, "--size", help="Resize every image to WIDTHxHEIGHT (cover + "
                                       "centre crop), e.g. 640x360.", show_default=False),
    every: int = typer.Option(1, "--every", help="Videos: keep every N-th frame."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty output folder (same-named "
                                   "files are replaced; nothing else is deleted)."),
    list_presets: bool = typer.Option(False, "--list-presets", help="List the degradation presets and exit."),
):
    """Degrade clean images or a video into an input/ + target/ pair folder (for evaluation or training).

    Example: kdsharp degrade photos/ -o pairs/ --preset lowbw --seed 1 --max-images 20
    """
    if list_presets:
        from kdsharp.data.config import preset_summaries

        for name, line in preset_summaries().items():
            print(f"{name:8s} {line}")
        return
    if src is None or out is None:
        raise KdsharpError("kdsharp degrade needs SRC and -o OUT (see kdsharp degrade --help)")
    from kdsharp.data.datasets import make_paired_set

    res = make_paired_set(src, out, preset=preset, seed=seed, max_images=max_images, size=size,
                          overwrite=overwrite, every=every)
    msg = f"wrote {res.written} pairs to {res.input_dir} and {res.target_dir}"
    info(msg + (f" ({res.skipped} unreadable file(s) skipped)" if res.skipped else ""))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("degrade")(degrade_cmd)
