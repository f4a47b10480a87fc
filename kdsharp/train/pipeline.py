"""Train the teacher and distil the students from one bundle, in one time budget (a GPU lease).

    kdsharp train pack -c configs/bundle.yaml -o bundle.zip        # CPU machine with PyAV
    kdsharp train pipeline --bundle bundle.zip --minutes 8.5 --publish OUT/   # GPU machine

Stages run one after another: ``teacher`` (configs/pipeline_teacher.yaml), then the students
``student`` and ``fast`` distilled from the teacher just trained (or from the shipped teacher if
the teacher stage did not run or failed); ``student_nokd`` is the distillation ablation (the
student's recipe without the distillation terms). Each stage gets a share of the time left, reads its
training crops and validation pairs from the bundle, exports fp16 EMA weights every
``publish_every_s`` seconds and at its end, and copies them into ``publish`` — so a lease cut off
at any moment still leaves usable weights. A failing stage is reported and the next one runs; what
can be checked without training (the bundle, every stage's config and overrides, run folders left by
an earlier pipeline in ``out_dir``) is checked before the first stage starts.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from kdsharp.console import error, info
from kdsharp.data.bundle import read_meta
from kdsharp.errors import ConfigError, KdsharpError
from kdsharp.io.config import config_source
from kdsharp.train.config import load_config

STAGES = ("teacher", "student", "student_nokd", "fast")
# relative time share of each stage (renormalised over the stages that run)
SHARES = {"teacher": 0.56, "student": 0.22, "student_nokd": 0.22, "fast": 0.22}
STARTUP_S = 25.0  # per stage: building the data and the val baseline, the final validation


@dataclass
class StageResult:
    """One stage's outcome: ``weights`` (None if it failed), val metrics, steps and seconds."""

    name: str
    weights: str | None = None  # the final weights
    best_weights: str | None = None  # the best validated ones, when not the final ones
    step: int = 0
    seconds: float = 0.0
    val: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)  # best validation, with its 'step'
    baselines: dict = field(default_factory=dict)
    error: str | None = None

    def record(self, result) -> None:
        """Take the weights, steps and metrics of a :class:`~kdsharp.train.trainer.TrainResult`."""
        self.weights = str(result.export) if result.export else None
        self.best_weights = str(result.best_export) if result.best_export else None
        self.step, self.val, self.best = result.step, dict(result.val), dict(result.best)
        self.baselines = dict(result.baselines)


def stage_config(
    stage: str,
    bundle: Path,
    minutes: float,
    out_dir: Path,
    publish: Path | None,
    publish_every_s: float,
    teacher: str | None,
    overrides: list[str],
) -> dict:
    """The config of ``stage``: its YAML with the bundle as data and val sources and the time budget."""
    from kdsharp.configs import resolve_config_path

    path = resolve_config_path(f"pipeline_{stage}")
    b = str(bundle)
    sets = [
        f"data.sources=[{{type: bundle, path: '{b}', part: train, content: clean, repeat: 1.5}}, "
        f"{{type: bundle, path: '{b}', part: train, content: pairs, repeat: 1}}]",
        f"val.sources=[{{type: bundle, path: '{b}', part: val}}]",
        f"schedule.max_minutes={minutes:.3f}",
        f"out_dir='{out_dir}'",
        f"publish.every_s={publish_every_s:g}",
    ]
    if publish is not None:
        sets.append(f"publish.dir='{publish}'")
    if teacher:
        sets.append(f"teacher='{teacher}'")
    return load_config(path, sets + list(overrides))


def run_pipeline(
    bundle: str | Path,
    minutes: float,
    out_dir: str | Path = "runs/pipeline",
    publish: str | Path | None = None,
    stages: tuple[str, ...] = STAGES,
    publish_every_s: float = 60.0,
    overrides: dict[str, list[str]] | None = None,
    shares: dict[str, float] | None = None,
) -> list[StageResult]:
    """Run ``stages`` in order within ``minutes`` in all; returns one :class:`StageResult` each.

    ``overrides`` maps a stage name to extra ``key=value`` config overrides (e.g. a CPU smoke test
    shrinking batches); ``shares`` replaces some stages' relative time shares (:data:`SHARES`).
    A summary is written to ``out_dir/pipeline.json`` (and ``publish``).
    """
    from kdsharp.train.trainer import train

    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ConfigError(
            f"unknown pipeline stage(s) {', '.join(unknown) or '(none)'} (choose from {', '.join(STAGES)})"
        )
    twice = sorted({s for s in stages if stages.count(s) > 1})
    if twice:  # the second run of a stage would find the first one's folder, after the budget was spent on it
        raise ConfigError(f"pipeline stage(s) {', '.join(twice)} given twice: list each stage once", params=["stages"])
    weights = {**SHARES, **(shares or {})}
    bad = {k: v for k, v in (shares or {}).items() if k not in STAGES or not v > 0}
    if bad:
        raise ConfigError(f"time shares {bad}: give a positive share to a stage of {', '.join(STAGES)}")
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ConfigError(f"minutes={minutes}: the time budget must be a number of minutes > 0", params=["minutes"])
    unknown = [s for s in overrides or {} if s not in STAGES]
    if unknown:
        raise ConfigError(
            f"overrides for unknown stage(s) {', '.join(unknown)}: use STAGE:KEY=VALUE with a stage of "
            f"{', '.join(STAGES)}"
        )
    unused = [s for s in overrides or {} if s not in stages]
    if unused:  # a typo'd --stages would train without the overrides meant for it
        raise ConfigError(
            f"overrides for stage(s) {', '.join(unused)} that do not run (stages='{','.join(stages)}'): "
            "add the stage to the stages or drop its overrides",
            params=["stages"],
        )
    bundle, out_dir = Path(bundle), Path(out_dir)
    publish = Path(publish) if publish else None
    # before the first stage spends the budget: not a bundle, no val pairs, config typos, a used run folder
    if not (read_meta(bundle).get("counts") or {}).get("val"):
        raise ConfigError(
            f"{bundle}: the bundle holds no validation pairs, which every stage validates on: re-pack it "
            "with val_sources (and val > 0) in its config",
            params=["bundle"],
        )
    if publish is not None:
        from kdsharp.io.atomic import ensure_writable_dir

        ensure_writable_dir(publish)
    for stage in stages:
        with config_source(f"pipeline stage {stage}"):
            cfg = stage_config(
                stage,
                bundle,
                1.0,
                out_dir,
                publish,
                publish_every_s,
                None if stage == "teacher" else "teacher",
                list((overrides or {}).get(stage, [])),
            )
        run = Path(cfg["out_dir"]) / cfg["name"]
        if (run / "last.pth").exists():
            raise ConfigError(
                f"{run} already holds a run (last.pth): the pipeline starts new runs, choose another out_dir=DIR",
                params=["out_dir"],
            )
    deadline = time.monotonic() + minutes * 60.0
    results: list[StageResult] = []
    teacher_weights: str | None = None
    for i, stage in enumerate(stages):
        left = deadline - time.monotonic()
        share = weights[stage] / sum(weights[s] for s in stages[i:])
        budget = max(0.1, (left * share - STARTUP_S) / 60.0)
        res = StageResult(stage)
        t0 = time.monotonic()
        info(f"pipeline: stage {stage}, {budget:.2f} min of training ({left / 60:.2f} min left in all)")
        try:
            teacher = None if stage == "teacher" else (teacher_weights or "teacher")
            cfg = stage_config(
                stage,
                bundle,
                budget,
                out_dir,
                publish,
                publish_every_s,
                teacher,
                list((overrides or {}).get(stage, [])),
            )
            res.record(train(cfg))
            if stage == "teacher" and res.weights:  # the students learn from the best validated teacher
                teacher_weights = res.best_weights or res.weights
        except KeyboardInterrupt as stop:  # the trainer saved last.pth; say so in the summary, then stop
            reached = getattr(stop, "result", None)  # TrainingStopped: what the run had reached
            res.error = "interrupted"  # before its first step, or a second Ctrl-C: nothing saved
            if reached is not None:
                res.error = "interrupted (the run's last.pth resumes it)"
                res.record(reached)
            res.seconds = round(time.monotonic() - t0, 1)
            _write_summary([*results, res], out_dir, publish)
            raise
        except Exception as e:  # noqa: BLE001 - the next stage still runs
            res.error = f"{type(e).__name__}: {e}"
            error(f"pipeline stage {stage} failed: {res.error}")
            if not isinstance(e, KdsharpError):  # a bad input says all in one line; a bug needs its traceback
                traceback.print_exc()
        res.seconds = round(time.monotonic() - t0, 1)
        results.append(res)
        _write_summary(results, out_dir, publish)
    return results


def _write_summary(results: list[StageResult], out_dir: Path, publish: Path | None) -> None:
    from kdsharp.io.atomic import atomic_path

    text = json.dumps([r.__dict__ for r in results], indent=1, default=str)
    for folder in filter(None, (out_dir, publish)):
        with atomic_path(Path(folder) / "pipeline.json") as tmp:
            tmp.write_text(text, encoding="utf-8")
