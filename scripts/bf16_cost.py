"""What bf16 on the CPU costs and saves, per model: one JSON report (the basis of the CLI's precision default).

    python scripts/bf16_cost.py -o docs/eval/bf16_cost.json          # ~6 min on 2 cores (a CPU with bf16)
    python scripts/readme_results.py                                 # renders it into the README

On a CPU that multiplies bfloat16 in hardware (``kdsharp.devices.cpu_has_native_bf16``) each model
runs on the held-out photos of ``kdsharp eval`` (the corpus's test split, long side <= 720 px, the
presets ``lowbw``, ``defocus``, ``h264`` with the eval's seed) twice: in float32 and under bf16
autocast, as :class:`kdsharp.infer.backends.TorchBackend` runs it (float32 weights, the chroma step in
float32). Reported per preset: the mean PSNR against the ground truth of both runs and their
difference (the cost), the mean and largest absolute difference between the two outputs in 8-bit
levels, and the share of output values that are identical; per model, the bare model's frames/s at
1920x1080 on 2 threads in both precisions, timed in turn in one process (:func:`paired_speed`).
The teacher is slow on 2 cores: ``--teacher-images N`` runs it on the first N photos only (0: skip).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realtime_bench import report_header


def paired_speed(fp32, bf16, pairs: int, size: tuple[int, int] = (1920, 1080)) -> dict:
    """Frames/s of the two backends on one (1,3,H,W) noise frame on 2 threads, timed in turn (float32,
    bf16, float32, ...) after a warm-up each: the median of each and the median ratio, which holds
    when the VM's speed drifts from one minute to the next (single runs a minute apart did not)."""
    import statistics
    import time

    from kdsharp.infer.threads import torch_threads

    x = torch.rand(1, 3, size[1], size[0], generator=torch.Generator().manual_seed(0))
    t32, t16 = [], []
    with torch_threads(2):
        fp32(x), bf16(x)
        for _ in range(pairs):
            t0 = time.perf_counter()
            fp32(x)
            t1 = time.perf_counter()
            bf16(x)
            t16.append(time.perf_counter() - t1)
            t32.append(t1 - t0)
    ratios = [a / b for a, b in zip(t32, t16, strict=True)]
    return {
        "fps_fp32": round(1 / statistics.median(t32), 4),
        "fps_bf16": round(1 / statistics.median(t16), 4),
        "speedup": round(statistics.median(ratios), 3),
        "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "pairs": pairs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--models", default="student,student_nokd,teacher")
    ap.add_argument("--teacher-images", type=int, default=6)
    ap.add_argument("--corpus", type=Path, default=None)
    a = ap.parse_args()

    from kdsharp.devices import cpu_has_native_bf16
    from kdsharp.evaluate.report import DEFAULT_PRESETS, EVAL_SEED
    from kdsharp.evaluate.sets import build_preset_set, corpus_test_paths, load_clean_images
    from kdsharp.infer.backends import TorchBackend, auto_bf16
    from kdsharp.infer.threads import keep_freed_memory
    from kdsharp.io.images import from_tensor, to_tensor
    from kdsharp.metrics import psnr

    if not cpu_has_native_bf16():
        raise SystemExit("this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16): nothing to measure")
    keep_freed_memory()
    clean = load_clean_images(None, [str(p) for p in corpus_test_paths(a.corpus)])
    report: dict = {**report_header("bf16_cost.py"), "images": len(clean), "presets": list(DEFAULT_PRESETS)}
    report["models"] = {}
    for name in a.models.split(","):
        limit = a.teacher_images if name == "teacher" else None
        if limit == 0:
            continue
        images = clean[:limit] if limit else clean
        fp32 = TorchBackend(name, "cpu", half=False)
        bf16 = TorchBackend(name, "cpu", half=True)
        entry: dict = {
            "images": len(images),
            "default": "bf16" if auto_bf16(fp32.model, torch.device("cpu")) else "fp32",
            "presets": {},
        }
        for preset in DEFAULT_PRESETS:
            rows = []
            for _, lq, gt in build_preset_set(images, preset, seed=EVAL_SEED):
                x = to_tensor(lq)
                o32, o16 = from_tensor(fp32(x).clamp(0, 1)), from_tensor(bf16(x).clamp(0, 1))
                diff = np.abs(o32.astype(np.int16) - o16.astype(np.int16))
                rows.append((psnr(o32, gt), psnr(o16, gt), diff.mean(), diff.max(), np.mean(diff == 0)))
            p32, p16, mean_abs, max_abs, same = (np.array(c, dtype=np.float64) for c in zip(*rows, strict=True))
            entry["presets"][preset] = {
                "psnr_fp32": round(float(p32.mean()), 4),
                "psnr_bf16": round(float(p16.mean()), 4),
                "cost_db": round(float(p32.mean() - p16.mean()), 4),
                "mean_abs_levels": round(float(mean_abs.mean()), 4),
                "max_abs_levels": int(max_abs.max()),
                "identical": round(float(same.mean()), 4),
            }
            print(name, preset, entry["presets"][preset], file=sys.stderr, flush=True)
        entry.update(paired_speed(fp32, bf16, pairs=3 if name == "teacher" else 10))
        del fp32, bf16
        entry["cost_db_max"] = max(p["cost_db"] for p in entry["presets"].values())
        report["models"][name] = entry
        print(name, {k: v for k, v in entry.items() if k != "presets"}, file=sys.stderr, flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
