"""Regenerate the README's results block from the reports (no figure is typed by hand).

Reads the held-out eval report (``kdsharp eval -o docs/eval``: report.json) and the GPU training
summaries copied into docs/train/ (``pipeline.json`` and each run's ``val_log.csv`` from
``scripts/gpu_pipeline.sh``), and rewrites the text between the markers
``<!-- results:begin -->`` and ``<!-- results:end -->`` in README.md.

    python scripts/readme_results.py [--check]     # --check: exit 1 if the README is stale
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from kdsharp.evaluate.tables import ROW_TITLES, method_table

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TARGETS = {"teacher": 1.8, "student": 1.0, "fast": 0.6}


def _d(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2f}"


def quality(report: dict) -> list[str]:
    d = report["data"]
    out = [f"### Quality on held-out photos (`kdsharp eval`, report: [`docs/eval/report.md`](docs/eval/report.md))", "",
           f"Presets {', '.join(f'`{p}`' for p in d['presets'])} built (seed {d['seed']}) from the "
           f"{d['n_images']} photos of the corpus's held-out **test** split (never trained, validated or tuned on; "
           "long side ≤ 720 px). The unsharp mask is tuned on each preset's own images by grid search: the best "
           "a classic sharpening filter could do. Mean over the presets:", ""]
    out += method_table(report, report["overall"])
    presets = list(report["presets"])
    out += ["", "ΔPSNR (dB) and ΔSSIM over the input, per preset:", "",
            "| Method | " + " | ".join(f"{p} ΔPSNR | {p} ΔSSIM" for p in presets) + " |",
            "|---|" + "---:|---:|" * len(presets)]
    for row in report["rows"][1:]:
        cells = []
        for p in presets:
            r = report["presets"][p]["rows"]
            dssim = r[row].get("delta_ssim", r[row]["ssim"] - r["input"]["ssim"])  # same images as the row ran on
            cells += [_d(r[row]["delta_psnr"]), f"{dssim:+.4f}"]
        out.append(f"| {ROW_TITLES.get(row, row)} | " + " | ".join(cells) + " |")
    subsets = report.get("subsets") or {}
    if subsets:
        out += ["", "ΔPSNR (dB) on what calls show (test-split images by corpus tag, pooled over the presets):", "",
                "| Method | " + " | ".join(f"{t} ({s['n_images']} photos)" for t, s in subsets.items()) + " |",
                "|---|" + "---:|" * len(subsets)]
        for row in report["rows"][1:]:
            out.append(f"| {ROW_TITLES.get(row, row)} | "
                       + " | ".join(_d((s["rows"].get(row) or {}).get("delta_psnr")) for s in subsets.values()) + " |")
    out += ["", "Targets (issue 14) against these figures:", "",
            "| model | target ΔPSNR | measured | every preset ≥ +0.2 dB | above the tuned unsharp mask on every preset |",
            "|---|---:|---:|---|---|"]
    for name, target in TARGETS.items():
        if name not in report["overall"]:
            continue
        per = [report["presets"][p]["rows"] for p in presets]
        every = all(r[name]["delta_psnr"] >= 0.2 for r in per)
        above = all(r[name]["delta_psnr"] > r["unsharp"]["delta_psnr"] for r in per)
        got = report["overall"][name]["delta_psnr"]
        out.append(f"| {name} | +{target:.1f} | {_d(got)} {'(met)' if got >= target else '(not met)'} | "
                   f"{'yes' if every else 'no'} | {'yes' if above else 'no'} |")
    comp = report.get("comparison")
    if comp:
        out += ["", f"Crops from `{comp['set']}` (most detailed windows; zoomed ×{comp['zoom']}):", "",
                "![comparison](docs/eval/comparison.png)"]
    return out


def training(train_dir: Path) -> list[str]:
    summaries = sorted(train_dir.glob("*pipeline.json"))
    if not summaries:
        return []
    out = ["", "### Training on one GPU (`kdsharp train pipeline`, summaries in [`docs/train/`](docs/train/))", "",
           "Validation PSNR (dB) on the bundle's 48 validation pairs (corpus val split, `lowbw`/`defocus`/`h264`) "
           "against training time; each run continues the shipped weights of the same architecture:", "",
           "| run | steps | minutes | input | val PSNR every 500 steps → at the end |", "|---|---:|---:|---:|---|"]
    for summary in summaries:
        tag = summary.name.replace("pipeline.json", "").rstrip("_") or "pipeline"
        for stage in json.loads(summary.read_text()):
            log = train_dir / f"{tag}_{stage['name']}_val_log.csv"
            curve = ""
            if log.is_file():
                rows = list(csv.DictReader(open(log)))
                curve = " → ".join(f"{float(r['psnr']):.2f}" for r in rows)
            inp = stage.get("baselines", {}).get("input", {}).get("psnr", float("nan"))
            out.append(f"| {tag} {stage['name']} | {stage['step']} | {stage['seconds'] / 60:.1f} | {inp:.2f} | {curve} |")
    return out


def ablation(train_dir: Path, report: dict) -> list[str]:
    path = train_dir / "gpu2_pipeline.json"
    if not path.is_file():
        return []
    stages = {s["name"]: s for s in json.loads(path.read_text())}
    if not {"student", "student_nokd"} <= set(stages):
        return []
    out = ["", "### Distillation ablation (`kdsharp train pipeline --stages student,student_nokd`)", "",
           "Both runs start from the same weights, with the same data, seed and number of steps; they differ only "
           "in the distillation terms (output + feature distillation from the teacher).", "",
           "| run | distillation | steps | val PSNR (dB) | val SSIM | held-out ΔPSNR (dB) |", "|---|---|---:|---:|---:|---:|"]
    for name in ("student_nokd", "student"):
        s = stages[name]
        held = report["overall"].get(name, {}).get("delta_psnr")
        out.append(f"| `{name}` | {'yes' if name == 'student' else 'no'} | {s['step']} | {s['val']['psnr']:.2f} | "
                   f"{s['val']['ssim']:.4f} | {_d(held) if held is not None else '–'} |")
    return out


def speed(bench_dir: Path) -> list[str]:
    runs = [json.loads(p.read_text()) for p in sorted(bench_dir.glob("*.json"))]
    if not runs:
        return []
    cpus = sorted({r.get("cpu", "?") for r in runs})
    out = ["", f"### Speed of the bare models (`kdsharp bench --json`, files in [`docs/bench/`](docs/bench/))", "",
           f"{runs[0]['size']}, batch 1, {runs[0]['threads']} CPU threads, {', '.join(cpus)}, median of "
           f"{runs[0]['iters']} calls; the end-to-end video figures are under Usage, \"Real-time video\".", "",
           "| model | backend | frames/s | p50 ms | p95 ms | peak MB |", "|---|---|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: (r["model"], r["backend"])):
        out.append(f"| {r['model']} | {r['backend']} | {r['fps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                   f"{r.get('peak_mem_mb', float('nan')):.0f} |")
    return out


def render(report: dict, train_dir: Path, bench_dir: Path = Path("docs/bench")) -> str:
    return "\n".join([BEGIN, *quality(report), *training(train_dir), *ablation(train_dir, report), *speed(bench_dir),
                      END])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=Path("README.md"))
    ap.add_argument("--report", type=Path, default=Path("docs/eval/report.json"))
    ap.add_argument("--train", type=Path, default=Path("docs/train"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the README block is not up to date")
    a = ap.parse_args()
    text = a.readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{a.readme}: add the markers {BEGIN} and {END} where the results go", file=sys.stderr)
        return 2
    block = render(json.loads(a.report.read_text()), a.train)
    new = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    if a.check:
        return 0 if new == text else 1
    a.readme.write_text(new, encoding="utf-8")
    print(f"updated {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
