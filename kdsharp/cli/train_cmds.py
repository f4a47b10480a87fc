"""CLI: ``kdsharp train teacher|student|ablation`` (config-driven training, resumable, DDP-ready).

Multi-GPU/CPU: ``torchrun --nproc_per_node N -m kdsharp train teacher --config ...``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdsharp.console import info

train_app = typer.Typer(
    name="train",
    help="Train the teacher, then students by knowledge distillation (YAML configs in configs/).\n\n"
    "Override any config key after the options: `kdsharp train teacher --config configs/teacher_quick.yaml "
    "schedule.iters=200 optim.lr=1e-4`. Multi-process: `torchrun --nproc_per_node N -m kdsharp train ...`.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_CONFIG = typer.Option(None, "--config", "-c", help="YAML config (e.g. configs/teacher_quick.yaml).")
_OVERRIDES = typer.Argument(None, metavar="[KEY=VALUE]...",
                            help="Config overrides, typed as YAML: optim.lr=1e-4 amp=off data.batch=4.")
_RESUME = typer.Option(None, "--resume", flag_value="auto", is_flag=False, metavar="[PATH|auto]",
                       help="Continue a run: a last.pth/best.pth path, or 'auto' (the run folder's last.pth). "
                       "Bare --resume means auto.")
_OUT = typer.Option(None, "--out", "-o", help="Runs folder (config out_dir); the run goes in OUT/<name>.")


def _split_resume(resume: Optional[str], overrides: Optional[List[str]]) -> tuple[Optional[str], list[str]]:
    """A bare ``--resume`` followed by ``key=value`` swallows it: give it back to the overrides."""
    overrides = list(overrides or [])
    if resume and "=" in resume and not Path(resume).exists():
        return "auto", [resume, *overrides]
    return resume, overrides


def _report(result) -> None:
    val, best = result.val, result.best
    if val:
        info(f"final val PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f}"
             + (f" (best {best['psnr']:.2f} dB at step {best['step']})" if best else ""))
    for k, v in (result.baselines or {}).items():
        info(f"  {k}: {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}")
    info(f"run folder: {result.run_dir}" + (f"; weights: {result.export}" if result.export else ""))


def _run(kind: str, config, overrides, resume, out, teacher=None) -> None:
    from kdsharp.train.entry import run_training

    resume, overrides = _split_resume(resume, overrides)
    result = run_training(kind, config, overrides, teacher=teacher, out_dir=out, resume=resume)
    if kind == "ablation":
        if result["markdown"]:
            typer.echo(result["markdown"])
    elif result.main:
        _report(result)


@train_app.command("teacher")
def teacher_command(
    config: Optional[Path] = _CONFIG,
    overrides: Optional[List[str]] = _OVERRIDES,
    resume: Optional[str] = _RESUME,
    out: Optional[Path] = _OUT,
):
    """Train a teacher on degraded/clean pairs (pixel + optional edge/perceptual losses).

    Example: kdsharp train teacher --config configs/teacher_quick.yaml schedule.iters=300
    """
    _run("teacher", config, overrides, resume, out)


@train_app.command("student")
def student_command(
    config: Optional[Path] = _CONFIG,
    overrides: Optional[List[str]] = _OVERRIDES,
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help="Frozen teacher: registered name, "
                                          ".safetensors weights or a training checkpoint (.pth)."),
    resume: Optional[str] = _RESUME,
    out: Optional[Path] = _OUT,
):
    """Distill a student from a frozen teacher (output/feature distillation + ground truth).

    Example: kdsharp train student --config configs/student_quick.yaml
    --teacher runs/teacher_quick/teacher_quick.safetensors
    """
    _run("student", config, overrides, resume, out, teacher)


@train_app.command("ablation")
def ablation_command(
    config: Optional[Path] = _CONFIG,
    overrides: Optional[List[str]] = _OVERRIDES,
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t", help="Frozen teacher (name or path)."),
    resume: Optional[str] = _RESUME,
    out: Optional[Path] = _OUT,
):
    """Train the same student twice, with and without distillation; writes ablation.md/.json.

    Example: kdsharp train ablation --config configs/student_quick.yaml --teacher teacher
    """
    _run("ablation", config, overrides, resume, out, teacher)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to ``app``."""
    app.add_typer(train_app, name="train")
