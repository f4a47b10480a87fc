"""One call per ``kdsharp train`` command: resolve the config, then train (or run the ablation)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kdsharp.errors import ConfigError
from kdsharp.train.config import apply_overrides, expand_user_paths, load_config, validate_config

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
            cfg = expand_user_paths(apply_overrides(cfg, overrides))
            validate_config(cfg)
            return cfg
        raise ConfigError(
            "give a config: config=NAME|FILE (e.g. config=teacher_quick), or resume=PATH/last.pth",
            params=["config", "resume"],
        )
    cfg = load_config(config, overrides, **direct)
    if resume and resume != "auto":  # the run continues in the checkpoint's folder, under its name
        cfg["name"] = _resumed_run_dir(resume).name
    return cfg


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
    overrides = list(overrides)
    _check_out_dir_with_resume(out_dir, overrides, resume)
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


def _check_out_dir_with_resume(out_dir: str | Path | None, overrides: list[str], resume: str | None) -> None:
    """A run resumed from a checkpoint path continues in that checkpoint's folder: an ``out_dir`` or a
    ``name`` given as well (an option or an override) that points elsewhere is refused, not ignored."""
    if not resume or resume == "auto":
        return
    given = [str(out_dir)] if out_dir is not None else []
    given += _override_values(overrides, "out_dir")
    run_dir = _resumed_run_dir(resume)
    for name in _override_values(overrides, "name"):
        if name != run_dir.name:
            raise ConfigError(
                f"name={name} and resume={resume} disagree: a run resumed from a checkpoint continues in its "
                f"folder ({run_dir}) under its name; give one of the two",
                params=["resume"],
            )
    for out in given:
        if Path(out).expanduser().resolve() != run_dir.resolve().parent:
            raise ConfigError(
                f"out_dir={out} and resume={resume} disagree: a run resumed from a checkpoint continues in "
                f"its folder ({run_dir}); give one of the two (resume=auto continues the run in out_dir={out})",
                params=["out_dir", "resume"],
            )


def _override_values(overrides: list[str], key: str) -> list[str]:
    """The values given to ``key`` by ``key=value`` overrides, as written."""
    return [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].strip() == key]


def _resumed_run_dir(resume: str) -> Path:
    """The run folder of the checkpoint ``resume`` (a ``last.pth``/``best.pth`` path or its folder)."""
    path = Path(resume)
    return path if path.is_dir() else path.parent
