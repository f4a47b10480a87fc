"""Distillation ablation: the same student, budget and seed, trained with and without the teacher.

Writes ``ablation.md`` (a table for the README) and ``ablation.json`` into
``out_dir/<name>_ablation/``. With the teacher cache on, both runs train on the same cached crops
(the no-KD run just ignores the teacher's outputs), so the data is identical too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from kdsharp.console import info
from kdsharp.errors import ConfigError
from kdsharp.io.atomic import atomic_path, ensure_writable_dir
from kdsharp.train.trainer import TrainResult, train

DISTILL_TERMS = ("distill_output", "distill_feature")


def without_distillation(cfg: dict) -> dict:
    """A copy of ``cfg`` whose distillation terms have weight 0 (teacher kept only for the cache)."""
    out = copy.deepcopy(cfg)
    loss = out.get("loss") or {}
    for term in DISTILL_TERMS:
        if term in loss:
            loss[term] = {**loss[term], "weight": 0.0}
    perceptual = loss.get("perceptual")
    if isinstance(perceptual, dict) and perceptual.get("weight") and perceptual.get("network", "teacher") == "teacher":
        loss["perceptual"] = {**perceptual, "weight": 0.0}  # the teacher's features are distillation too
    if not out["teacher_cache"]["enabled"]:
        out["teacher"] = None
    return out


def ablation_table(rows: list[dict]) -> str:
    """Markdown table of ``rows`` (dicts with model, distillation, psnr, ssim, iters)."""
    lines = ["| model | distillation | val PSNR (dB) | val SSIM | iterations |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['distillation']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['iters']} |")
    return "\n".join(lines) + "\n"


def run_ablation(cfg: dict, resume: str | None = None) -> dict:
    """Train ``cfg`` twice (``<name>_kd`` with distillation, ``<name>_nokd`` without); returns
    ``{'rows': [...], 'markdown': str, 'paths': {...}}`` and writes the table files. ``resume``:
    None or 'auto' (each run continues from its own folder's last.pth)."""
    if not cfg.get("teacher"):
        raise ConfigError("ablation needs a teacher: pass teacher=NAME|PATH", params=["teacher"])
    if resume not in (None, "auto"):  # one checkpoint path would continue both runs from the first one's
        raise ConfigError(
            f"resume={resume}: the ablation trains two runs; continue both with resume=auto", params=["resume"]
        )
    loss = cfg.get("loss") or {}
    if not any((loss.get(t) or {}).get("weight") for t in DISTILL_TERMS):
        raise ConfigError("ablation needs a distillation term: set loss.distill_output.weight (or distill_feature)")
    name = cfg["name"] or "student"
    kd = copy.deepcopy(cfg)
    kd["name"] = f"{name}_kd"
    nokd = without_distillation(cfg)
    nokd["name"] = f"{name}_nokd"
    results: dict[str, TrainResult] = {}
    for label, c in (("kd", kd), ("nokd", nokd)):
        info(f"ablation: training {c['name']} ({'with' if label == 'kd' else 'without'} distillation)")
        results[label] = train(c, resume=resume, teardown=label == "nokd")
    res_kd, res_nokd = results["kd"], results["nokd"]
    if not res_kd.main:  # DDP rank > 0: rank 0 writes the table
        return {"rows": [], "markdown": "", "paths": {}}
    iters = cfg["schedule"]["iters"]
    model = cfg["model"]["name"]
    rows = [{"model": "input (degraded)", "distillation": "-", **res_kd.baselines["input"], "iters": 0}]
    if "teacher" in res_kd.baselines:
        rows.append(
            {
                "model": f"teacher ({Path(str(cfg['teacher'])).name})",
                "distillation": "-",
                **res_kd.baselines["teacher"],
                "iters": "-",
            }
        )
    rows.append({"model": model, "distillation": "no", **res_nokd.val, "iters": iters})
    rows.append({"model": model, "distillation": "yes", **res_kd.val, "iters": iters})
    md = ablation_table(rows)
    gain = res_kd.val["psnr"] - res_nokd.val["psnr"]
    md += f"\nDistillation changes val PSNR by {gain:+.2f} dB (same student, data, seed and {iters} iterations).\n"
    out_dir = ensure_writable_dir(Path(cfg["out_dir"]) / f"{name}_ablation")
    with atomic_path(out_dir / "ablation.md") as tmp:
        tmp.write_text(md, encoding="utf-8")
    summary = {
        "rows": rows,
        "psnr_gain_db": gain,
        "runs": {k: str(v.run_dir) for k, v in results.items()},
        "exports": {k: str(v.export) if v.export else None for k, v in results.items()},
    }
    with atomic_path(out_dir / "ablation.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    info(f"ablation table -> {out_dir / 'ablation.md'}")
    return {"rows": rows, "markdown": md, "paths": {"md": out_dir / "ablation.md", "json": out_dir / "ablation.json"}}
