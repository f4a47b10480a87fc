"""Summarise a `scripts/gpu_race.sh` run: one row per run, every figure read from its files.

Maintainer script. Reads each run folder of the race's ``runs.tgz`` (unpacked): ``pipeline.json``
(steps, seconds, validation PSNR/SSIM and the input's), ``<stage>/config.yaml`` (model, loss) and
``<stage>/val_log.csv`` (the curve); counts parameters and MACs at 1920x1080 on the architecture;
with ``--fps`` also times each architecture at 1080p on this CPU (2 threads, deployed form); with
``--weights DIR`` (the runs' exported weights, found as ``DIR/**/<run>/**/*.safetensors``) it also
measures each run's validation ΔPSNR per preset on the bundle's val pairs (``--bundle``), output
rounded to 8 bits.
Writes ``<out>.json`` and ``<out>.md``. With ``--ship STAGE=RUN,...`` it also copies the shipped
runs' summaries into the README's training table inputs: ``<train-dir>/<tag>_pipeline.json`` (their
pipeline.json entries, in the order given) and ``<tag>_<stage>_val_log.csv``.

    python scripts/race_report.py --runs /work/gpu3/runs2 -o docs/train/gpu3_race --weights /work/gpu3 \
        --reference student,fast,teacher --luma-only student,teacher --ship teacher=teacher --tag gpu3
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from realtime_bench import cpu_info, cpu_label  # scripts/ is on the path: this file runs as a script

from kdsharp.evaluate.bench import benchmark
from kdsharp.metrics import psnr
from kdsharp.models import unwrap
from kdsharp.models.common import reparameterize, set_memory_format
from kdsharp.registry import count_macs, create_model, load_model


def bare_fps(model: torch.nn.Module) -> float:
    """Frames/s of the bare model at 1920x1080, 2 threads (``kdsharp bench``'s timing, median of 6)."""
    return benchmark(set_memory_format(model.eval(), torch.channels_last), threads=2, iters=6)["fps"]


class LumaChangeOnly(torch.nn.Module):
    """``model``'s output with only its luma change kept: input + (Y(out) - Y(in)) on R, G and B (the
    chroma of the input), i.e. what a luma-only model with the same luma output would give."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kdsharp.ops.color import rgb_to_y

        return x + rgb_to_y(self.model(x).clamp(0, 1)) - rgb_to_y(x)


@functools.cache
def val_pairs(bundle: Path) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], list[float]]:
    """The bundle's val pairs as (lq, gt, preset), and the input's PSNR on each: read once per run."""
    from kdsharp.data.bundle import load_bundle, val_presets

    _, pairs = load_bundle(bundle, part="val")
    items = [(lq, gt, preset) for (lq, gt), preset in zip(pairs, val_presets(bundle), strict=True)]
    return items, [psnr(lq, gt) for lq, gt, _ in items]


def per_preset(model: torch.nn.Module, bundle: Path) -> dict[str, float]:
    """Mean PSNR gain (dB) over the input per val preset of ``bundle`` (output rounded to 8 bits),
    plus the mean PSNR of the output ('all') and of the input ('input')."""
    torch.set_num_threads(2)
    items, base = val_pairs(bundle)
    gains: dict[str, list[float]] = {"all": [], "input": base}
    for (lq, gt, preset), p_in in zip(items, base, strict=True):
        x = torch.from_numpy(lq).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            out = (model(x).clamp(0, 1)[0].permute(1, 2, 0) * 255).round().byte().numpy()
        p_out = psnr(out, gt)
        gains.setdefault(preset, []).append(p_out - p_in)
        gains["all"].append(p_out)
    return {p: round(float(np.mean(v)), 3) for p, v in gains.items()}


def reference_row(name: str, bundle: Path, fps: bool, luma_only: bool = False) -> dict:
    """A shipped model, measured like the race runs (for comparison; not trained in the race);
    ``luma_only``: only its luma change kept (:class:`LumaChangeOnly`)."""
    model = load_model(name)
    arch = unwrap(model)  # the teacher's local windows wrap the architecture
    gains = per_preset(LumaChangeOnly(model) if luma_only else model, bundle)
    row = {
        "run": f"shipped {name}" + (", luma change only" if luma_only else ""),
        "stage": name,
        "model": name,
        "kwargs": {},
        "init": "shipped",
        "distillation": None,
        "crop": None,
        "batch": None,
        "params": sum(p.numel() for p in unwrap(create_model(name)).parameters()),  # trained form
        "gmacs_1080p": round(count_macs(arch) / 1e9, 2),
        "steps": None,
        "seconds": None,
        "val_psnr": gains.pop("all"),
        "val_ssim": None,
        "input_psnr": gains.pop("input"),
        "curve": [],
        "val_delta_by_preset": gains,
    }
    row["delta_psnr"] = round(row["val_psnr"] - row["input_psnr"], 3)
    if fps and name != "teacher" and not luma_only:
        row["fps_1080p"] = round(bare_fps(arch), 1)
    return row


def run_row(folder: Path, fps: bool, weights_root: Path | None = None, bundle: Path | None = None) -> dict:
    summary = json.loads((folder / "pipeline.json").read_text())[0]
    stage = folder / summary["name"]
    cfg = yaml.safe_load((stage / "config.yaml").read_text())
    model = create_model(cfg["model"]["name"], **(cfg["model"].get("kwargs") or {}))
    params = sum(p.numel() for p in model.parameters())  # trained form (before folding the branches)
    reparameterize(model)  # MACs and speed of the deployed form
    kd = any(v.get("weight") for k, v in cfg["loss"].items() if k.startswith("distill"))
    curve = [(int(r["step"]), round(float(r["psnr"]), 3)) for r in csv.DictReader(open(stage / "val_log.csv"))]
    row = {
        "run": folder.name,
        "stage": summary["name"],
        "model": cfg["model"]["name"],
        "kwargs": cfg["model"].get("kwargs") or {},
        "init": cfg["model"].get("init"),
        "distillation": kd,
        "crop": cfg["data"]["crop"],
        "batch": cfg["data"]["batch"],
        "params": params,
        "gmacs_1080p": round(count_macs(model) / 1e9, 2),
        "steps": summary["step"],
        "seconds": summary["seconds"],
        "val_psnr": round(summary["val"]["psnr"], 3),
        "val_ssim": round(summary["val"]["ssim"], 4),
        "input_psnr": round(summary["baselines"]["input"]["psnr"], 3),
        "curve": curve,
    }
    row["delta_psnr"] = round(row["val_psnr"] - row["input_psnr"], 3)
    found = sorted(weights_root.glob(f"**/{folder.name}/**/*.safetensors")) if weights_root else []
    if found:  # the run's trained weights: timed (random weights can be slower: denormals) and validated
        model = load_model(found[0])
        if bundle is not None:
            gains = per_preset(model, bundle)
            row["val_delta_by_preset"] = {p: v for p, v in gains.items() if p not in ("all", "input")}
    if fps and summary["name"] != "teacher":
        row["fps_1080p"] = round(bare_fps(model), 1)
    return row


def race_table(rows: list[dict], cpu: dict | None) -> list[str]:
    """The markdown table of a race's rows (best validation first, teachers last), with an fps column
    when ``cpu`` (:func:`cpu_info`) says they were timed; also what the README shows."""
    presets = list(next((r["val_delta_by_preset"] for r in rows if "val_delta_by_preset" in r), {}))
    out = [
        "| run | model | init | distillation | params | GMACs@1080p | "
        + ("fps@1080p | " if cpu else "")
        + "steps | minutes | val PSNR | Δ input |"
        + "".join(f" Δ {p} |" for p in presets),
        "|---|---|---|---|---:|---:|" + ("---:|" if cpu else "") + "---:|---:|---:|---:|" + "---:|" * len(presets),
    ]
    for r in sorted(rows, key=lambda r: ("teacher" in r["stage"], -r["val_psnr"])):
        kw = ", ".join(f"{a}={b}" for a, b in r["kwargs"].items())
        fps = (f"{r['fps_1080p']:.1f} | " if "fps_1080p" in r else "– | ") if cpu else ""
        kd = "–" if r["distillation"] is None else ("yes" if r["distillation"] else "no")
        steps = "–" if r["steps"] is None else str(r["steps"])
        minutes = "–" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}"
        by = r.get("val_delta_by_preset", {})
        out.append(
            f"| {r['run']} | `{r['model']}`{f' ({kw})' if kw else ''} | {r['init'] or 'scratch'} | "
            f"{kd} | {r['params'] / 1e3:.0f} k | {r['gmacs_1080p']:.1f} | {fps}"
            f"{steps} | {minutes} | {r['val_psnr']:.2f} | {r['delta_psnr']:+.2f} |"
            + "".join(f" {by[p]:+.2f} |" if p in by else " – |" for p in presets)
        )
    if cpu:
        out += ["", f"fps: bare model at 1920x1080, 2 threads, median of 6, on {cpu_label(cpu)}."]
    return out


GENERIC_INTRO = [
    "Runs validated on the bundle's 48 val pairs (lowbw / defocus / h264, 256 px). Parameters are counted",
    "in the trained form, MACs in the deployed form. Val PSNR is the trainer's (pipeline.json); the Δ per",
    "preset columns are measured by this script on the same 48 pairs with the output rounded to 8 bits;",
    "`shipped …` rows are the weights in the package measured the same way. `scripts/race_report.py`",
    "wrote this file.",
]


def markdown(rows: list[dict], cpu: dict | None, title: str | None = None) -> str:
    if title:
        return "\n".join([f"# {title}", "", *GENERIC_INTRO, "", *race_table(rows, cpu)]) + "\n"
    lines = [
        "# GPU race of student designs (`scripts/gpu_race.sh`)",
        "",
        "Every run trained on one NVIDIA H100 at the same time as the others (CPU data loading shared by",
        "all runs), from the same training bundle, validated on the bundle's 48 val pairs (lowbw / defocus /",
        "h264, 256 px). Two races: the first ran 8 runs at once for 7.8 min, the second 4 runs at once",
        "for 2.9 min (fewer runs sharing the machine's 16 CPU cores for data, so more steps per minute).",
        "Parameters are counted in the trained form, MACs (and fps) in the deployed form (re-parameterized",
        "`fast_y` blocks folded into single 3x3 convs). Val PSNR is the trainer's (pipeline.json); the Δ per",
        "preset columns are measured by this script on the same 48 pairs with the output rounded to 8 bits;",
        "`shipped …` rows are the weights in the package measured the same way (not trained in the race).",
        "`scripts/race_report.py` wrote this file.",
        "",
        *race_table(rows, cpu),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="unpacked runs.tgz of the race")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output path without suffix")
    ap.add_argument("--fps", action="store_true", help="also time each student at 1080p on this CPU")
    ap.add_argument("--weights", type=Path, help="folder holding the runs' exported weights")
    ap.add_argument("--bundle", type=Path, default=Path(".bundle/bundle.zip"))
    ap.add_argument("--reference", default="", help="comma-separated shipped models to measure alongside")
    ap.add_argument(
        "--luma-only",
        default="",
        help="comma-separated shipped models to measure with only their "
        "luma change kept (how much of their gain is colour)",
    )
    ap.add_argument("--ship", default="", help="STAGE=RUN,... the runs whose weights ship")
    ap.add_argument("--train-dir", type=Path, default=Path("docs/train"))
    ap.add_argument("--tag", default="race")
    ap.add_argument("--title", help="heading of the markdown file for runs that are not a GPU race")
    a = ap.parse_args()
    shipped = []
    for item in filter(None, a.ship.split(",")):
        stage, run = item.split("=", 1)
        entry = json.loads((a.runs / run / "pipeline.json").read_text())[0]
        if entry["name"] != stage:
            raise SystemExit(f"{run} trained stage {entry['name']!r}, not {stage!r}")
        shipped.append(entry)
        shutil.copyfile(a.runs / run / stage / "val_log.csv", a.train_dir / f"{a.tag}_{stage}_val_log.csv")
    if shipped:
        (a.train_dir / f"{a.tag}_pipeline.json").write_text(json.dumps(shipped, indent=1) + "\n")
    rows = [run_row(f, a.fps, a.weights, a.bundle) for f in sorted(a.runs.iterdir()) if (f / "pipeline.json").is_file()]
    rows += [reference_row(name, a.bundle, a.fps) for name in filter(None, a.reference.split(","))]
    rows += [reference_row(name, a.bundle, False, True) for name in filter(None, a.luma_only.split(","))]
    cpu = cpu_info() if a.fps else None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps({"cpu": cpu, "runs": rows}, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(markdown(rows, cpu, a.title))
    print("wrote", a.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
