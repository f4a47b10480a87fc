"""Training: teachers, then students by knowledge distillation (config-driven, resumable, DDP).

    from kdsharp.train import load_config, train
    cfg = load_config("configs/student_quick.yaml", ["schedule.iters=100"], teacher="runs/teacher_quick/last.pth")
    result = train(cfg, resume="auto")        # -> TrainResult(run_dir, step, val, best, baselines, export)

See :mod:`kdsharp.train.config` for the keys, :mod:`kdsharp.train.trainer` for the loop.
"""

from kdsharp._lazy import lazy_dir, lazy_getattr
from kdsharp.train.config import DEFAULTS, apply_overrides, config_hash, load_config, parse_override

__all__ = [
    "DEFAULTS",
    "apply_overrides",
    "config_hash",
    "load_config",
    "parse_override",
    "train",
    "Trainer",
    "TrainResult",
    "TrainingStopped",
    "run_ablation",
    "model_from_checkpoint",
]

_LAZY = {
    "train": "kdsharp.train.trainer",
    "Trainer": "kdsharp.train.trainer",
    "TrainResult": "kdsharp.train.trainer",
    "TrainingStopped": "kdsharp.train.trainer",
    "run_ablation": "kdsharp.train.ablation",
    "model_from_checkpoint": "kdsharp.train.builders",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
__dir__ = lazy_dir(_LAZY, globals())
