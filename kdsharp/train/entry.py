"""One call per ``kdsharp train`` command: resolve the config, then train (or run the ablation)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kdsharp.errors import ConfigError
from kdsharp.train.config import apply_overrides, load_config, validate_config

KINDS = ("teacher", "student", "ablation")


def resolve_config(
    config: str | Path | None,
    overrides: Iterable[str] = (),
    *,
    teacher: str | None = None,
    out_dir: str | Path | None = None,
    resume: str | None = None,
) -> dict:
    """The run config: ``config`` (YAML) <- teacher/out_dir <- ``key=value`` overrides.

    Without ``config``, resuming from an explicit checkpoint reuses the config stored in it.
    """
    direct = {"teacher": teacher, "out_dir": str(out_dir) if out_dir is not None else None}
    if config is None:
        if resume and resume != "auto":
            from kdsharp.train.checkpoint import load_checkpoint

            path = Path(resume)
            ckpt = load_checkpoint(path / "last.pth" if path.is_dir() else path)
            cfg = apply_overrides(ckpt["config"], [f"{k}={v}" for k, v in direct.items() if v is not None])
            cfg = apply_overrides(cfg, overrides)
            validate_config(cfg)
            return cfg
        raise ConfigError(
            "give a config: config=NAME|FILE (e.g. config=teacher_quick), or resume=PATH/last.pth",
            params=["config", "resume"],
        )
    return load_config(config, overrides, **direct)


def run_training(
    kind: str,
    config: str | Path | None,
    overrides: Iterable[str] = (),
    *,
    teacher: str | None = None,
    out_dir: str | Path | None = None,
    resume: str | None = None,
):
    """``kdsharp train teacher|student|ablation``: returns a TrainResult (ablation: its summary dict)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown training kind '{kind}' (choose {', '.join(KINDS)})")
    cfg = resolve_config(config, overrides, teacher=teacher, out_dir=out_dir, resume=resume)
    if kind in ("student", "ablation") and not cfg.get("teacher"):
        raise ConfigError(
            f"training a {kind} needs a teacher: pass teacher=NAME|PATH "
            "(e.g. teacher=runs/teacher_quick/teacher_quick.safetensors) or set teacher: in the config",
            params=["teacher"],
        )
    if kind == "ablation":
        from kdsharp.train.ablation import run_ablation

        return run_ablation(cfg, resume=resume)
    from kdsharp.train.trainer import train

    return train(cfg, resume=resume)
