"""CLI: ``kdsharp train teacher|student|ablation`` (config-driven training, resumable, DDP-ready).

Multi-GPU/CPU: ``torchrun --nproc_per_node N -m kdsharp train teacher --config ...``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import typer
from typer.core import TyperCommand

from kdsharp.console import info

train_app = typer.Typer(
    name="train",
    help="Train the teacher, then students by knowledge distillation (YAML configs in configs/).\n\n"
    "Override any config key after the options: `kdsharp train teacher --config configs/teacher_quick.yaml "
    "schedule.iters=200 optim.lr=1e-4`. Multi-process: `torchrun --nproc_per_node N -m kdsharp train ...`.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="YAML config: a path or a shipped name (teacher_quick; see --list-configs). A corpus source on "
    "split: test (reserved for `kdsharp eval`) is used with a warning.",
)
_OVERRIDES = typer.Argument(
    None, metavar="[KEY=VALUE]...", help="Config overrides, typed as YAML: optim.lr=1e-4 amp=off data.batch=4."
)
_RESUME = typer.Option(
    None,
    "--resume",
    metavar="[PATH|auto]",
    help="Continue a run: a last.pth/best.pth path, or 'auto' (the run folder's last.pth). Bare --resume means auto.",
)
_OUT = typer.Option(None, "--out", "-o", help="Runs folder (config out_dir); the run goes in OUT/<name>.")


def _list_configs(value: bool) -> None:
    if value:
        from kdsharp.configs import format_configs

        typer.echo(format_configs())
        raise typer.Exit()


@train_app.callback()
def _train_options(
    list_configs: bool = typer.Option(
        False,
        "--list-configs",
        is_eager=True,
        callback=_list_configs,
        help="List the configs that ship with kdsharp (pass one by name: --config teacher_quick) and exit.",
    ),
):
    """Train the teacher, then students by knowledge distillation."""


class _BareResumeCommand(TyperCommand):
    """A command whose bare ``--resume`` (last, or followed by another option or by a ``key=value``
    override) means ``--resume auto``: the word is added before parsing, as typer >= 0.20 has no
    options with an optional value (click's ``flag_value``). Help shows ``--help`` bare, as every
    kdsharp command does."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_bool_flag", False) and p.metavar is None:
                p.metavar = ""
        return params

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        out: list[str] = []
        for i, arg in enumerate(args):
            out.append(arg)
            nxt = args[i + 1] if i + 1 < len(args) else None
            if arg == "--resume" and (nxt is None or nxt.startswith("-") or ("=" in nxt and not Path(nxt).exists())):
                out.append("auto")
        return super().parse_args(ctx, out)


@contextlib.contextmanager
def _signal_passed_on() -> Iterator[None]:
    """The trainer catches Ctrl-C / SIGTERM to save ``last.pth`` first and then raises
    ``TrainingStopped`` with the signal's number: hand the signal on to the CLI's handler, which
    reports it and exits 130 (Ctrl-C) or 143 (SIGTERM), as every command does."""
    try:
        yield
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", None)
        if signum is not None and callable(signal.getsignal(signum)):
            signal.raise_signal(signum)
        raise


def _worst_group(best: dict) -> str:
    """', worst-group change +x dB' when the best step was chosen by val.select=worst_group."""
    score = best.get("score")
    return "" if score is None or score == best.get("psnr") else f", worst-group change {score:+.3f} dB"


def _report(result) -> None:
    val, best = result.val, result.best
    if val:
        info(
            f"final val PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f}"
            + (f" (best {best['psnr']:.2f} dB at step {best['step']}{_worst_group(best)})" if best else "")
        )
    for k, v in (result.baselines or {}).items():
        info(f"  {k}: {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}")
    info(f"run folder: {result.run_dir}" + (f"; weights: {result.export}" if result.export else ""))
    if result.best_export:
        info(f"best validated weights (step {result.best['step']}): {result.best_export}")


def _run(kind: str, config, overrides, resume, out, teacher=None) -> None:
    from kdsharp.configs import resolve_config_path
    from kdsharp.train.entry import run_training

    config = resolve_config_path(config) if config is not None else None
    with _signal_passed_on():
        result = run_training(kind, config, overrides or [], teacher=teacher, out_dir=out, resume=resume)
    if kind == "ablation":
        if result["markdown"]:
            typer.echo(result["markdown"])
    elif result.main:
        _report(result)


@train_app.command("teacher", cls=_BareResumeCommand)
def teacher_command(
    config: Path | None = _CONFIG,
    overrides: list[str] | None = _OVERRIDES,
    resume: str | None = _RESUME,
    out: Path | None = _OUT,
):
    """Train a teacher on degraded/clean pairs (pixel + optional edge/perceptual losses).

    Example: kdsharp train teacher --config configs/teacher_quick.yaml schedule.iters=300
    """
    _run("teacher", config, overrides, resume, out)


@train_app.command("student", cls=_BareResumeCommand)
def student_command(
    config: Path | None = _CONFIG,
    overrides: list[str] | None = _OVERRIDES,
    teacher: str | None = typer.Option(
        None,
        "--teacher",
        "-t",
        help="Frozen teacher: registered name, .safetensors weights or a training checkpoint (.pth).",
    ),
    resume: str | None = _RESUME,
    out: Path | None = _OUT,
):
    """Distill a student from a frozen teacher (output/feature distillation + ground truth).

    Example: kdsharp train student --config configs/student_quick.yaml
    --teacher runs/teacher_quick/teacher_quick.safetensors
    """
    _run("student", config, overrides, resume, out, teacher)


@train_app.command("ablation", cls=_BareResumeCommand)
def ablation_command(
    config: Path | None = _CONFIG,
    overrides: list[str] | None = _OVERRIDES,
    teacher: str | None = typer.Option(None, "--teacher", "-t", help="Frozen teacher (name or path)."),
    resume: str | None = typer.Option(
        None,
        "--resume",
        metavar="[auto]",
        help="Continue both runs, each from its run folder's last.pth. Bare --resume means auto.",
    ),
    out: Path | None = _OUT,
):
    """Train the same student twice, with and without distillation; writes ablation.md/.json.

    Example: kdsharp train ablation --config configs/student_quick.yaml --teacher teacher
    """
    _run("ablation", config, overrides, resume, out, teacher)


@train_app.command("pack")
def pack_command(
    config: str = typer.Option(
        ...,
        "--config",
        "-c",
        help="Bundle YAML, a path or a shipped name (bundle): sources, "
        "val_sources, crop, clean, pairs, val, max_mb (a hard limit), seed. A corpus source on "
        "split: test (reserved for `kdsharp eval`) is used with a warning.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The bundle to write (.zip)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle (atomically)."),
):
    """Pack a training bundle: clean crops + real-codec pairs + val pairs, for a GPU machine without PyAV.

    An existing bundle is kept unless --overwrite is given; the zip is written atomically.

    Example: kdsharp train pack -c configs/bundle.yaml -o bundle.zip
    """
    from kdsharp.configs import resolve_config_path
    from kdsharp.data.pack import bundle_summary, pack_bundle
    from kdsharp.errors import ConfigError
    from kdsharp.io.config import config_source
    from kdsharp.train.config import read_yaml_mapping

    if out.suffix.lower() != ".zip":  # the output's error, not the config file's
        raise ConfigError(f"out={out}: a bundle is a .zip file (e.g. out=bundle.zip)", params=["out"])
    path = resolve_config_path(config)
    spec = read_yaml_mapping(path)
    known = {
        "sources",
        "val_sources",
        "crop",
        "clean",
        "pairs",
        "val",
        "val_size",
        "val_presets",
        "max_mb",
        "pair_degradation",
        "seed",
    }
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{config}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    sources = spec.pop("sources", None) or []
    with config_source(path):  # a bad setting or source names the bundle YAML
        result = pack_bundle(sources, out, overwrite=overwrite, **spec)
    s = bundle_summary(result)
    info(f"wrote {out}: {s['clean']} clean crops, {s['pairs']} codec pairs, {s['val']} val pairs, {s['mb']} MB")


@train_app.command("pipeline")
def pipeline_command(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Training bundle from `kdsharp train pack`."),
    minutes: float = typer.Option(8.5, "--minutes", "-m", help="Time budget for all stages (minutes)."),
    out: Path = typer.Option(Path("runs/pipeline"), "--out", "-o", help="Runs folder."),
    publish: Path | None = typer.Option(
        None,
        "--publish",
        help="Folder that gets each stage's fp16 weights every --publish-every seconds and pipeline.json.",
    ),
    publish_every: float = typer.Option(60.0, "--publish-every", help="Seconds between weight exports."),
    stages: str = typer.Option(
        "teacher,student,fast",
        "--stages",
        help="Comma-separated stages, in order (teacher, student, student_nokd, fast).",
    ),
    sets: list[str] | None = typer.Option(
        None,
        "--set",
        help="Config override for one stage, STAGE:KEY=VALUE (repeatable), e.g. student:schedule.iters=1500.",
    ),
    share: list[str] | None = typer.Option(
        None,
        "--share",
        help="A stage's relative time share, STAGE=WEIGHT (repeatable; defaults teacher 0.56, students 0.22).",
    ),
):
    """Train the teacher, then distil `student` and `fast` from it, within one time budget (GPU lease).

    Configs: configs/pipeline_{teacher,student,fast}.yaml. Example (GPU):
    kdsharp train pipeline --bundle bundle.zip --minutes 8.5 --publish out/
    """
    from kdsharp.errors import ConfigError
    from kdsharp.train.pipeline import run_pipeline

    overrides: dict[str, list[str]] = {}
    for item in sets or []:
        stage, sep, override = item.partition(":")
        if not sep or "=" not in override:
            raise ConfigError(f"--set {item!r}: use STAGE:KEY=VALUE, e.g. student:schedule.iters=1500")
        overrides.setdefault(stage.strip(), []).append(override)
    shares: dict[str, float] = {}
    for item in share or []:
        stage, _, weight = item.partition("=")
        try:
            shares[stage.strip()] = float(weight)
        except ValueError:
            raise ConfigError(f"--share {item!r}: use STAGE=WEIGHT, e.g. student=0.5") from None
    with _signal_passed_on():
        results = run_pipeline(
            bundle,
            minutes,
            out,
            publish,
            tuple(s.strip() for s in stages.split(",") if s.strip()),
            publish_every,
            overrides,
            shares,
        )
    for r in results:
        if r.error:
            info(f"{r.name}: FAILED ({r.error})")
        else:
            inp = r.baselines.get("input", {}).get("psnr", float("nan"))
            info(
                f"{r.name}: {r.step} steps in {r.seconds:.0f} s, val {r.val.get('psnr', float('nan')):.2f} dB "
                f"(input {inp:.2f} dB) -> {r.weights}"
            )
            if r.best_weights:
                info(
                    f"{r.name}: best val {r.best['psnr']:.2f} dB at step {r.best['step']}{_worst_group(r.best)}"
                    f" -> {r.best_weights}"
                )
    if any(r.error for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to ``app``."""
    app.add_typer(train_app, name="train")
