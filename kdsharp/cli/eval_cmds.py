"""CLI: ``kdsharp eval`` (quality report against baselines) and ``kdsharp bench`` (speed)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kdsharp.console import console, info


def _split(text: Optional[str]) -> Optional[list[str]]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def eval_command(
    data: Optional[Path] = typer.Option(None, "--data", help="Paired folder with input/ and target/ images."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Degradation preset(s), comma separated "
                                         "(default: lowbw,defocus,h264,mixed), built from held-out clean images."),
    source: Optional[Path] = typer.Option(None, "--source", help="Folder of clean images for --preset "
                                          "(default: the test split of the training corpus, see --corpus)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Training corpus whose held-out test split is "
                                          "evaluated when neither --data nor --source is given [default: "
                                          "$KDSHARP_CORPUS or ~/.cache/kdsharp/corpus; build it with "
                                          "`kdsharp data corpus -o DIR`].", show_default=False),
    models: str = typer.Option("teacher,student,fast,student_nokd", "--models",
                               help="Models (registered names or checkpoint paths), comma separated; "
                               "one without trained weights is skipped with a warning."),
    out: Path = typer.Option(Path("eval_report"), "-o", "--out", help="Report folder (report.md, report.json, "
                             "comparison.png)."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=1, help="Use at most N images per set."),
    device: str = typer.Option("cpu", "--device", help="Where the models run: cpu or cuda."),
    fps: bool = typer.Option(True, "--fps/--no-fps", help="Measure frames/s at 1920x1080 (model only)."),
    seed: int = typer.Option(2024, "--seed", help="Seed of the preset degradations."),
):
    """Compare input, the best-tuned unsharp mask and the models: PSNR, SSIM, speed; writes a report.

    Example: kdsharp eval --preset mixed --models student,fast --max-images 3 -o eval_report
    """
    from kdsharp.evaluate import evaluate

    report = evaluate(data=data, presets=_split(preset), source=source, models=_split(models) or [],
                      out_dir=out, max_images=max_images, device=device, measure_fps=fps, seed=seed, corpus=corpus)
    _print_summary(report)
    info(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'comparison.png'}")


def _print_summary(report: dict) -> None:
    from rich.table import Table

    from kdsharp.evaluate.tables import format_fps

    overall = len(report["presets"]) > 1
    stats = report["overall"] if overall else next(iter(report["presets"].values()))["rows"]
    table = Table(title="overall (mean over presets)" if overall else next(iter(report["presets"])))
    for col in ("method", "PSNR", "SSIM", "ΔPSNR", "FPS CPU@1080p"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for row in report["rows"]:
        s, m = stats[row], report["methods"][row]
        table.add_row(row, f"{s['psnr']:.2f}", f"{s['ssim']:.4f}", f"{s['delta_psnr']:+.2f}",
                      format_fps(m.get("fps_cpu_1080p")))
    console.print(table)


def bench_command(
    model: str = typer.Option("fast", "--model", help="Registered model name or checkpoint path."),
    size: str = typer.Option("1920x1080", "--size", help="Input size WIDTHxHEIGHT."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    backend: str = typer.Option("torch", "--backend", help="torch, onnx or onnx-int8 (ONNX Runtime)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Frames per call."),
    half: bool = typer.Option(False, "--half", help="float16 weights and input."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: library default)."),
    iters: int = typer.Option(20, "--iters", min=1, help="Timed calls (fewer for slow models: stops after ~20 s)."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed calls first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
):
    """Model-only speed: median frames/s, latency p50/p95 and peak memory on a noise input.

    Example: kdsharp bench --model fast --size 1920x1080 --threads 4 --json
    """
    from kdsharp.evaluate import benchmark, parse_size

    result = benchmark(model, size=parse_size(size), device=device, backend=backend, batch=batch, half=half,
                       iters=iters, warmup=warmup, threads=threads)
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"[bold]{result['model']}[/bold] {result['size']} batch {result['batch']} on {result['device']} "
        f"({result['backend']}{', fp16' if result['half'] else ''}, {result['threads']} threads)\n"
        f"  {result['fps']:.2f} frames/s   latency p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms "
        f"per batch ({result['p50_ms_per_frame']:.1f} ms per frame)\n"
        f"  peak memory +{result['peak_mem_mb']:.0f} MiB   {result['iters']} timed runs after {result['warmup']} warm-up"
        + _params_line(result))


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
