"""CLI: ``kdsharp models`` (the registered models) and ``kdsharp export`` (ONNX)."""

from __future__ import annotations

from pathlib import Path

import typer

from kdsharp.console import console, info

_ROLE_ORDER = {"teacher": 0, "student": 1, "fast": 2, "arch": 3}


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def format_params(train: int, deployed: int | None = None, long: bool = False) -> str:
    """``42.1k/11.7k`` (training/deployed form; ``long``: ``42.1k train / 11.7k deployed``),
    or one count when re-parameterisation does not change it."""
    if deployed is None or deployed == train:
        return _count(train)
    if long:
        return f"{_count(train)} train / {_count(deployed)} deployed"
    return f"{_count(train)}/{_count(deployed)}"


def models_cmd(
    role: str | None = typer.Option(
        None,
        "--role",
        help="Only models with this role: teacher, student, fast or arch (architecture presets).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
):
    """List the registered models: role, parameters, GMACs per 1080p frame, trained weights shipped?

    params shows training / deployed counts where they differ: `fast` trains with multi-branch
    convs and runs re-parameterised into single convs (the form `kdsharp bench` times and counts).

    Names with shipped weights run as is (kdsharp sharpen --model student); architecture presets
    are for training or for loading a checkpoint (e.g. an official Restormer .pth).
    """
    from kdsharp.registry import list_models, model_info

    rows = sorted((model_info(n) for n in list_models(role)), key=lambda r: _ROLE_ORDER.get(r["role"], 9))
    if as_json:
        import json

        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(
        title="kdsharp models",
        title_justify="left",
        caption_justify="left",
        show_edge=False,
        caption="params: training/deployed form where they differ (fast is re-parameterised "
        "into single convs to run; kdsharp bench counts the deployed form)",
    )
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("role", no_wrap=True)
    table.add_column("arch", no_wrap=True)
    table.add_column("params", no_wrap=True, justify="right")
    table.add_column("GMACs@1080p", no_wrap=True, justify="right")
    table.add_column("weights", no_wrap=True)
    wide = console.width >= 120
    if wide:
        table.add_column("description", overflow="fold", ratio=1)
    for r in rows:
        params = format_params(r["params"], r.get("params_deployed"))
        shipped = "[green]yes[/green]" if r["weights_shipped"] else ("no" if r["weights"] else "-")
        cells = [r["name"], r["role"], r["arch"], params, f"{r['gmacs_1080p']:.1f}", shipped]
        table.add_row(*cells, *([r["description"]] if wide else []))
    console.print(table)


def export_cmd(
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="Registered model name (see `kdsharp models`) or a "
        "checkpoint file (.safetensors / .pth, official Restormer checkpoints too).",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the .onnx file."),
    fp16: bool = typer.Option(False, "--fp16", help="Float16 network inside (float32 input/output); for GPU runtimes."),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Static int8 quantization (QDQ), calibrated on the built-in "
        "samples; smaller, often faster on CPU (check with kdsharp bench).",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version (11-20)."),
    static: bool = typer.Option(
        False, "--static", help="Fix the input size to --size instead of dynamic batch/height/width."
    ),
    size: str = typer.Option(
        "256x256", "--size", help="Tracing (and with --static, the fixed) input size WIDTHxHEIGHT in pixels."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file (atomically)."),
):
    """Export a model to ONNX: input 'input' and output 'output', (N,3,H,W) float RGB in [0,1].

    An existing output is kept unless --overwrite is given; the file is written atomically.

    Example: kdsharp export --model fast -o fast.onnx --int8
    """
    from kdsharp.infer.export import export_onnx
    from kdsharp.io.formats import parse_size

    w, h = parse_size(size)
    path = export_onnx(
        model, output, opset=opset, dynamic=not static, half=fp16, int8=int8, example_size=(h, w), overwrite=overwrite
    )
    kind = "int8" if int8 else "fp16" if fp16 else "fp32"
    info(f"wrote {path} ({kind}, opset {opset}, {path.stat().st_size / 1e6:.2f} MB)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("models")(models_cmd)
    app.command("export")(export_cmd)
