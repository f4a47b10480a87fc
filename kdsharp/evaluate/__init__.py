"""Evaluation: quality report against baselines (``kdsharp eval``) and speed (``kdsharp bench``).

from kdsharp.evaluate import evaluate, benchmark, tune_unsharp
report = evaluate(presets=["mixed"], models=["student"], out_dir="eval")  # also writes files
speed = benchmark("fast", size=(1920, 1080))                            # {'fps', 'p50_ms', ...}
"""

from kdsharp.evaluate.baselines import UNSHARP_GRID, tune_unsharp, unsharp_baseline
from kdsharp.evaluate.bench import benchmark, benchmark_video, parse_size
from kdsharp.evaluate.report import DEFAULT_MODELS, DEFAULT_PRESETS, HELD_OUT, evaluate

__all__ = [
    "evaluate",
    "benchmark",
    "benchmark_video",
    "parse_size",
    "tune_unsharp",
    "unsharp_baseline",
    "UNSHARP_GRID",
    "HELD_OUT",
    "DEFAULT_PRESETS",
    "DEFAULT_MODELS",
]
