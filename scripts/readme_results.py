"""Regenerate the README's results block from the reports (no figure is typed by hand).

Reads the held-out eval report (``kdsharp eval -o docs/eval``: report.json), the GPU training
summaries copied into docs/train/ (``pipeline.json`` and each run's ``val_log.csv`` from
``scripts/gpu_pipeline.sh``; the race table ``*_race.json`` from ``scripts/race_report.py``), and
rewrites the text between the markers ``<!-- results:begin -->`` and ``<!-- results:end -->`` in
README.md; also the real-time block (docs/bench/realtime*.json, one per machine) and the demo line (docs/demo.json,
the ``report.json`` of ``kdsharp demo``) between their own markers.

    python scripts/readme_results.py [--check]     # --check: exit 1 if the README is stale
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from make_model_cards import GPU_NAMES, LINEAGE, ROOT_LABELS  # scripts/ is on the path: this file runs as a script
from race_report import race_table
from realtime_bench import cpu_label

from kdsharp.console import plural
from kdsharp.evaluate.peers import is_peer
from kdsharp.evaluate.tables import ROW_TITLES, format_fps, method_table

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
RT_BEGIN, RT_END = "<!-- realtime:begin -->", "<!-- realtime:end -->"
DEMO_BEGIN, DEMO_END = "<!-- demo:begin -->", "<!-- demo:end -->"
ENS_BEGIN, ENS_END = "<!-- ensemble:begin -->", "<!-- ensemble:end -->"
ENSEMBLE_REPORT = Path("docs/eval/ensemble/report.json")
PEERS_BEGIN, PEERS_END = "<!-- peers:begin -->", "<!-- peers:end -->"
PEERS_REPORT = Path("docs/eval/peers/report.json")
REUSE_BEGIN, REUSE_END = "<!-- reuse:begin -->", "<!-- reuse:end -->"
REUSE_REPORT = Path("docs/bench/reuse_camera.json")
REUSE_S_BEGIN, REUSE_S_END = "<!-- reuse_student:begin -->", "<!-- reuse_student:end -->"
REUSE_S_REPORT = Path("docs/bench/reuse_student.json")  # scripts/reuse_quality.py --model student
REUSE_S_E2E = Path("docs/bench/reuse_student_zen4.json")  # scripts/realtime_bench.py --student-reuse
BF16_BEGIN, BF16_END = "<!-- bf16:begin -->", "<!-- bf16:end -->"
BF16_REPORT = Path("docs/eval/bf16_cost.json")  # scripts/bf16_cost.py
RT_TARGETS = {
    "1080p_pan/fast": 24.0,
    "720p_pan/fast": 40.0,
    "720p_talking/fast": 40.0,
    "1080p_pan/student": 8.0,
    "1080p_pan/student/compile": 8.0,
}
TARGETS = {"teacher": 1.8, "student": 1.0, "fast": 0.6}


def _d(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2f}"


def quality(report: dict) -> list[str]:
    d = report["data"]
    out = [
        "### Quality on held-out photos (`kdsharp eval`, report: [`docs/eval/report.md`](docs/eval/report.md))",
        "",
        f"Presets {', '.join(f'`{p}`' for p in d['presets'])} built (seed {d['seed']}) from the "
        f"{d['n_images']} photos of the corpus's held-out **test** split (never trained, validated or tuned on; "
        "long side ≤ 720 px). The unsharp mask is tuned on each preset's own images by grid search: the best "
        "a classic sharpening filter could do. Mean over the presets:",
        "",
    ]
    out += method_table(report, report["overall"])
    if report.get("cpu"):
        out += [
            "",
            f"FPS: the bare model on 1920x1080 frames, measured by the same eval run on {report['cpu']} "
            '(2 cores; other CPUs of this machine kind differ, see "Real-time video"). GMACs: per 1080p frame '
            "as the model runs (the teacher's overlapping local windows included; `kdsharp models` gives the "
            "architecture on a whole frame).",
        ]
    presets = list(report["presets"])
    out += [
        "",
        "ΔPSNR (dB) and ΔSSIM over the input, per preset:",
        "",
        "| Method | " + " | ".join(f"{p} ΔPSNR | {p} ΔSSIM" for p in presets) + " |",
        "|---|" + "---:|---:|" * len(presets),
    ]
    for row in report["rows"][1:]:
        cells = []
        for p in presets:
            r = report["presets"][p]["rows"]
            dssim = r[row].get("delta_ssim", r[row]["ssim"] - r["input"]["ssim"])  # same images as the row ran on
            cells += [_d(r[row]["delta_psnr"]), f"{dssim:+.4f}"]
        out.append(f"| {ROW_TITLES.get(row, row)} | " + " | ".join(cells) + " |")
    subsets = report.get("subsets") or {}
    if subsets:
        out += [
            "",
            "ΔPSNR (dB) on what calls show (test-split images by corpus tag, pooled over the presets):",
            "",
            "| Method | " + " | ".join(f"{t} ({s['n_images']} photos)" for t, s in subsets.items()) + " |",
            "|---|" + "---:|" * len(subsets),
        ]
        for row in report["rows"][1:]:
            out.append(
                f"| {ROW_TITLES.get(row, row)} | "
                + " | ".join(_d((s["rows"].get(row) or {}).get("delta_psnr")) for s in subsets.values())
                + " |"
            )
    clean = report.get("clean") or {}
    out += [
        "",
        "Targets (issue 14) against these figures:",
        "",
        "| model | target ΔPSNR | measured | every preset ≥ +0.2 dB | above the tuned unsharp mask on every preset |"
        + (" clean frames: mean level shift (< 0.25) |" if clean else ""),
        "|---|---:|---:|---|---|" + ("---:|" if clean else ""),
    ]
    for name, target in TARGETS.items():
        if name not in report["overall"]:
            continue
        per = [report["presets"][p]["rows"] for p in presets]
        every = all(r[name]["delta_psnr"] >= 0.2 for r in per)
        above = all(r[name]["delta_psnr"] > r["unsharp"]["delta_psnr"] for r in per)
        got = report["overall"][name]["delta_psnr"]
        shift = ""
        if name in clean:
            c = clean[name]["level_shift"]
            shift = f" {c:+.2f} ({'met' if abs(c) < 0.25 else 'not met'}) |"
        out.append(
            f"| {name} | +{target:.1f} | {_d(got)} {'(met)' if got >= target else '(not met)'} | "
            f"{'yes' if every else 'no'} | {'yes' if above else 'no'} |" + shift
        )
    comp = report.get("comparison")
    if comp:
        out += [
            "",
            f"Crops from `{comp['set']}` (most detailed windows; zoomed ×{comp['zoom']}):",
            "",
            "![comparison](docs/eval/comparison.png)",
        ]
    return out


def training(train_dir: Path) -> list[str]:
    summaries = sorted(train_dir.glob("*pipeline.json"))
    if not summaries:
        return []
    gpu_only = all(p.name.startswith("gpu") for p in summaries)
    out = [
        "",
        f"### Training {'on one GPU ' if gpu_only else 'runs '}(`kdsharp train pipeline`, summaries in "
        "[`docs/train/`](docs/train/))",
        "",
        "Validation PSNR (dB) on the bundle's 48 validation pairs (corpus val split, `lowbw`/`defocus`/`h264`) "
        "against training time; each run continues the shipped weights of the same architecture"
        + (
            ""
            if gpu_only
            else " (`gpu1`-`gpu3`: one NVIDIA H100, `gpu4`: one NVIDIA H200; `cpu*`: the "
            "2-core CPU, one or two threads, often beside other "
            "work: its minutes are wall-clock)"
        )
        + ":",
        "",
        "| run | steps | minutes | input | val PSNR every 500 steps → at the end |",
        "|---|---:|---:|---:|---|",
    ]
    for summary in summaries:
        tag = summary.name.replace("pipeline.json", "").rstrip("_") or "pipeline"
        for stage in json.loads(summary.read_text()):
            log = train_dir / f"{tag}_{stage['name']}_val_log.csv"
            curve = ""
            if log.is_file():
                rows = list(csv.DictReader(open(log)))
                curve = " → ".join(f"{float(r['psnr']):.2f}" for r in rows)
            inp = stage.get("baselines", {}).get("input", {}).get("psnr", float("nan"))
            out.append(
                f"| {tag} {stage['name']} | {stage['step']} | {stage['seconds'] / 60:.1f} | {inp:.2f} | {curve} |"
            )
    return out


def lineage_curves(train_dir: Path, report: dict) -> list[str]:
    """Validation PSNR against cumulative training time for each shipped model, run after run.

    The runs are those whose weights each shipped model continued (``LINEAGE`` of
    make_model_cards.py, the model cards' source), read from docs/train/<run>_pipeline.json and
    <run>_<stage>_val_log.csv; each run started from the previous run's best validated step.
    """
    rows = []
    for name in ("teacher", "student", "fast"):
        hours = {"gpu": 0.0, "cpu": 0.0}
        for i, stage_dir in LINEAGE[name]:
            tag, stage = ROOT_LABELS[i].split()[0], stage_dir.split("/")[-1]
            summary, log = train_dir / f"{tag}_pipeline.json", train_dir / f"{tag}_{stage}_val_log.csv"
            if not (summary.is_file() and log.is_file()):
                continue
            run = next((s for s in json.loads(summary.read_text()) if s["name"] == stage), None)
            vals = [(int(r["step"]), float(r["psnr"])) for r in csv.DictReader(open(log))]
            if run is None or not vals:
                continue
            kind = "gpu" if tag.startswith("gpu") else "cpu"
            hours[kind] += run["seconds"] / 3600
            best_step, best = max(vals, key=lambda v: v[1])
            inp = run.get("baselines", {}).get("input", {}).get("psnr", float("nan"))
            hardware = GPU_NAMES.get(tag, "GPU") if kind == "gpu" else "2-core CPU"
            rows.append(
                f"| `{name}` | {tag} | {hardware} | {run['seconds'] / 60:.0f} | "
                f"{hours['gpu']:.2f} / {hours['cpu']:.2f} | {inp:.2f} | "
                f"{vals[0][1]:.2f} | {best:.2f} (step {best_step}) | "
                f"{vals[-1][1]:.2f} (step {vals[-1][0]}) |"
            )
        overall = report.get("overall", {}).get(name, {})
        if "delta_psnr" in overall:
            rows.append(
                f"| `{name}` shipped | | | | | | | held-out test: {overall['delta_psnr']:+.2f} dB over the input | |"
            )
    if not rows:
        return []
    return [
        "",
        "### Quality against training time (the runs behind each shipped model)",
        "",
        "Each shipped model's runs in order, each continuing the previous run's best validated step; "
        "validation PSNR (dB) on the bundle's 48 pairs, whose input PSNR is given: the bundle was packed anew on a new "
        "machine before run gpu4 (same corpus, seed and recipe; other codec "
        "builds), so its pairs differ. Hours are cumulative "
        "training time on the GPUs and on the CPU (wall-clock, one or two threads, often beside other work), "
        "after the first CPU runs on 24 photos (model cards), which had no such validation:",
        "",
        "| model | run | hardware | minutes | hours so far GPU / CPU | input | first val | best val | last val |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def detail_ablation(train_dir: Path) -> list[str]:
    """The full-resolution stage on/off: two CPU runs of the student side by side from the same weights
    (docs/train/cpu5_student_val_log.csv with it, cpu5_nodetail_student_val_log.csv without)."""
    with_, without = train_dir / "cpu5_student_val_log.csv", train_dir / "cpu5_nodetail_student_val_log.csv"
    if not (with_.is_file() and without.is_file()):
        return []
    a = {int(r["step"]): float(r["psnr"]) for r in csv.DictReader(open(without))}
    b = {int(r["step"]): float(r["psnr"]) for r in csv.DictReader(open(with_))}
    steps = [s for s in sorted(set(a) & set(b)) if s % 500 == 0]
    out = [
        "",
        "### Full-resolution stage (`ResUNet(detail=8)`, CPU runs `cpu5` side by side)",
        "",
        "Both runs continue the `student` weights shipped before it (the U-Net "
        "alone) with the same data, seed, loss (ground truth only), "
        "batch 16 x 128 px and one CPU thread each, at the same time; one adds the full-resolution luma stage "
        "(its last conv starts at zero, so both start from the same output). Validation PSNR (dB) on the "
        "bundle's 48 pairs (the run without it was stopped early):",
        "",
        "| step | " + " | ".join(str(s) for s in steps) + " |",
        "|---|" + "---:|" * len(steps),
        "| `student` | " + " | ".join(f"{a[s]:.2f}" for s in steps) + " |",
        "| `student` + full-resolution stage | " + " | ".join(f"{b[s]:.2f}" for s in steps) + " |",
    ]
    return out


def race(train_dir: Path) -> list[str]:
    """The GPU race of student designs (docs/train/*_race.json, written by scripts/race_report.py)."""
    races = sorted(train_dir.glob("*_race.json"))
    if not races:
        return []
    data = json.loads(races[-1].read_text())
    return [
        "",
        f"### Student designs (GPU race, [`docs/train/{races[-1].stem}.md`](docs/train/{races[-1].stem}.md))",
        "",
        "Runs trained side by side on one H100 from the same bundle (the first race 8 at once, the second 4 at "
        "once, so more steps per minute), validated like the runs above (Δ per preset: output rounded to 8 bits; "
        "`shipped …`: the package's weights measured the same way); parameters of the trained form, MACs of the "
        "deployed form:",
        "",
        *race_table(data["runs"], data.get("cpu")),
    ]


def ablation(train_dir: Path, report: dict) -> list[str]:
    path = train_dir / "gpu2_pipeline.json"
    if not path.is_file():
        return []
    stages = {s["name"]: s for s in json.loads(path.read_text())}
    if not {"student", "student_nokd"} <= set(stages):
        return []
    out = [
        "",
        "### Distillation ablation (`kdsharp train pipeline --stages student,student_nokd`)",
        "",
        "Both runs start from the same weights, with the same data, seed and number of steps; they differ only "
        "in the distillation terms (output + feature distillation from the teacher).",
        "",
        "| run | distillation | steps | val PSNR (dB) | val SSIM | held-out ΔPSNR (dB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in ("student_nokd", "student"):
        s = stages[name]
        held = report["overall"].get(name, {}).get("delta_psnr")
        out.append(
            f"| `{name}` | {'yes' if name == 'student' else 'no'} | {s['step']} | {s['val']['psnr']:.2f} | "
            f"{s['val']['ssim']:.4f} | {_d(held) if held is not None else '–'} |"
        )
    return out


def race_ablation(train_dir: Path) -> list[str]:
    """Distillation on/off for each architecture the GPU race trained both ways (docs/train/*_race.json)."""
    races = sorted(train_dir.glob("*_race.json"))
    if not races:
        return []
    runs = json.loads(races[-1].read_text())["runs"]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["model"] + json.dumps(r["kwargs"], sort_keys=True), []).append(r)
    pairs = [
        sorted(rs, key=lambda r: r["distillation"])
        for rs in groups.values()
        if len(rs) == 2
        and {r["distillation"] for r in rs} == {False, True}
        and abs(rs[0]["seconds"] - rs[1]["seconds"]) < 0.1 * max(r["seconds"] for r in rs)
    ]  # same race
    if not pairs:
        return []
    stem = races[-1].stem
    out = [
        "",
        f"### Distillation at equal GPU time (race, [`docs/train/{stem}.md`](docs/train/{stem}.md))",
        "",
        "Each architecture trained from scratch with and without the distillation terms (output + feature "
        "distillation from the shipped teacher), same data, seed and time. The runs without distillation skip "
        "the teacher's forward pass and so make more steps.",
        "",
        "| architecture | distillation | steps | minutes | val PSNR (dB) | val SSIM |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for rs in pairs:
        for r in rs:
            kw = ", ".join(f"{a}={b}" for a, b in r["kwargs"].items())
            out.append(
                f"| `{r['model']}`{f' ({kw})' if kw else ''} | {'yes' if r['distillation'] else 'no'} | "
                f"{r['steps']} | {r['seconds'] / 60:.1f} | {r['val_psnr']:.2f} | {r['val_ssim']:.4f} |"
            )
    return out


def speed(bench_dir: Path) -> list[str]:
    runs = [json.loads(p.read_text()) for p in sorted(bench_dir.glob("*.json"))]
    runs = [r for r in runs if "backend" in r]  # model-only runs (realtime.json is rendered by realtime())
    if not runs:
        return []
    cpus = sorted({r.get("cpu", "?") for r in runs})
    out = [
        "",
        "### Speed of the bare models (`kdsharp bench --json`, files in [`docs/bench/`](docs/bench/))",
        "",
        f"{runs[0]['size']}, batch 1, {runs[0]['threads']} CPU threads, {', '.join(cpus)}, median of "
        f"{runs[0]['iters']} calls, one run each (the VM's speed drifts by 10-25% from one minute to the "
        "next: compare figures measured in turn, such as the bf16 table's); the end-to-end video figures are "
        'under Usage, "Real-time video".',
        "",
        "| model | backend | precision | frames/s | on the Y plane (video) | p50 ms | p95 ms | peak MB |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(runs, key=lambda r: (r["model"], r["backend"], r.get("precision", "fp32"))):
        yplane = f"{r['yplane_fps']:.1f}" if r.get("yplane_fps") else "–"
        out.append(
            f"| {r['model']} | {r['backend']} | {r.get('precision', 'fp32')} | {r['fps']:.1f} | {yplane} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r.get('peak_mem_mb', float('nan')):.0f} |"
        )
    return out


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "not met"


def encoder_defaults_text() -> str:
    """'`veryfast` up to 720p, `ultrafast` above' from :data:`kdsharp.io.video.ENCODER_DEFAULTS`."""
    from kdsharp.io.video import ENCODER_DEFAULTS

    names = {1280 * 720: "720p", 1920 * 1088: "1080p"}
    parts = [
        f"`{preset}` " + ("above" if pixels == float("inf") else f"up to {names.get(int(pixels), f'{pixels} pixels')}")
        for pixels, preset, _ in ENCODER_DEFAULTS
    ]
    return ", ".join(parts)


def published_command(command: str, path: Path) -> str:
    """The report's command with its ``-o`` file (often a temporary path) replaced by where it was published."""
    words = command.split()
    for i, w in enumerate(words[:-1]):
        if w in ("-o", "--out"):
            words[i + 1] = path.as_posix()
    return " ".join(words)


def _version(rt: dict) -> str:
    commit = rt.get("commit")
    return f"commit {commit}" if commit else f"kdsharp {rt['kdsharp_version']}"


def realtime_files(bench_dir: Path = Path("docs/bench")) -> list[Path]:
    """The reports of ``scripts/realtime_bench.py`` to render, one per machine: ``realtime.json``
    first, then ``realtime_*.json`` (e.g. ``realtime_amd.json``) by name."""
    first = bench_dir / "realtime.json"
    return ([first] if first.exists() else []) + sorted(bench_dir.glob("realtime_*.json"))


def reuse_camera(rc: dict, path: Path = REUSE_REPORT) -> list[str]:
    """The temporal-reuse table from ``scripts/reuse_quality.py``'s report (``path``)."""

    def db(value: float | None) -> str:
        return "identical" if value is None else f"{value:.2f} dB"

    def source(r: dict) -> str:
        noise = f"sensor noise σ {r['sigma']:g}" if r["sigma"] else "no noise"
        return f"camera, {noise}" if r["crf"] is None else f"{noise}, then H.264 CRF {r['crf']}"

    def cost(value: float | None) -> str:
        return "–" if value is None else f"{value if abs(value) >= 5e-4 else 0.0:.3f} dB"

    default = str(rc["default_tolerance"])
    rgb = rc.get("path") == "rgb"  # --model student: the RGB path, PSNR over R, G and B
    chroma = not rgb and any("psnr_chroma" in row["full"] for row in rc["sources"].values())  # since 2026-12-07
    model = (
        f"the shipped `{rc['model']}` on RGB frames on one thread (its chroma step on the RGB frame included; "
        "PSNR over R, G and B)"
        if rgb
        else "the shipped `fast` on the Y plane on one thread"
        + (" (its chroma step on the 4:2:0 chroma planes included)" if chroma else "")
    )
    out = [
        f"Temporal reuse measured by `{published_command(rc['command'], path)}` "
        f"([`{path.as_posix()}`]({path.as_posix()}), {rc['created'][:10]}, {_version(rc)}) on "
        f"{cpu_label(rc['cpu'])}, torch {rc['torch_version']}, {model}, each "
        f"frame compared with the previous one: {rc['frames']} frames of the {rc['size']} talking head as a camera "
        "gives them (fresh sensor noise of σ levels, RGB 0-255, in every frame) or as H.264 delivers them. PSNR "
        "is against what the model makes of the noise- and codec-free rendering; the cost is the run without "
        "reuse's PSNR minus the run's (target ≤ 0.05 dB):",
        "",
    ]
    if chroma:
        out += [
            "| source | reuse | model ms/frame | tiles skipped | PSNR against the reference: luma · chroma "
            "| cost: luma · chroma |",
            "|---|---|---:|---:|---:|---:|",
        ]
    else:
        out += [
            "| source | reuse | model ms/frame | tiles skipped | PSNR against the reference | cost |",
            "|---|---|---:|---:|---:|---:|",
        ]
    for row in rc["sources"].values():
        full = row["full"]
        psnr_full = db(full["psnr"]) + (f" · {db(full.get('psnr_chroma'))}" if chroma else "")
        out.append(f"| {source(row)} | none | {full['model_ms']:.1f} | – | {psnr_full} | – |")
        for tol, r in row["reuse"].items():
            label = "exact (`--reuse-tolerance 0`)" if tol == "0" else f"`--reuse-tolerance {tol}`"
            label += " (default)" if tol == default else ""
            psnr_text, cost_text = db(r["psnr"]), cost(r["cost_db"])
            if chroma:
                psnr_text += f" · {db(r.get('psnr_chroma'))}"
                cost_text += f" · {cost(r.get('cost_chroma_db'))}"
            out.append(f"| | {label} | {r['model_ms']:.1f} | {100 * r['skipped']:.0f}% | {psnr_text} | {cost_text} |")
    return out


def _runs(live: dict) -> str:
    """`` (runs: 3.3, 4.7, 9.0%)`` for a live figure measured several times, else nothing."""
    runs = live.get("runs_dropped_pct") or []
    return f" (runs: {', '.join(f'{p:.1f}' for p in sorted(runs))}%)" if len(runs) > 1 else ""


def reuse_student(rc: dict, e2e: dict, path: Path = REUSE_S_REPORT, e2e_path: Path = REUSE_S_E2E) -> list[str]:
    """The student's temporal-reuse table (``reuse_quality.py --model student``) and its end-to-end
    and live figures (``realtime_bench.py --student-reuse``)."""
    runs = e2e["student_reuse"]
    clips = {"720p_talking": "720p talking head (H.264)", "720p_cam": "720p webcam recording (sensor noise)"}
    out = [
        *reuse_camera(rc, path),
        "",
        f"End to end and live, measured by `{published_command(e2e['command'], e2e_path)}` "
        f"([`{e2e_path.as_posix()}`]({e2e_path.as_posix()}), {e2e['created'][:10]}, {_version(e2e)}) on "
        f"{cpu_label(e2e['cpu'])}, torch {e2e['torch_version']}, `student` on the 10 s 30 fps clips of the "
        "real-time tables, without and with temporal reuse (default tolerance)"
        + (
            f"; `live` was run {repeats} times each (off and on in turn): the run with the median drop is "
            "shown, with every run's drop beside it:"
            if (repeats := max(len(r.get("runs_dropped_pct", [])) for r in runs["live"].values())) > 1
            else ":"
        ),
        "",
        "| clip | reuse | `kdsharp sharpen`: frames/s end to end | model CPU ms/frame | tiles skipped "
        "| `kdsharp live`: frames processed | dropped | mean latency |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for clip, label in clips.items():
        for key in ("off", "reuse"):
            sh, lv = runs["sharpen"][f"{clip}/{key}"], runs["live"][f"{clip}/{key}"]
            skipped = "–" if sh.get("reused") is None else f"{100 * sh['reused']:.0f}%"
            out.append(
                f"| {label if key == 'off' else ''} | {'on' if key == 'reuse' else 'off'} | {sh['e2e_fps']:.1f} | "
                f"{sh['cpu_ms']['model']:.1f} | {skipped} | {lv['processed']} of {lv['processed'] + lv['dropped']} | "
                f"{lv['dropped_pct']:.1f}%{_runs(lv)} | "
                f"{lv['latency_ms']} ms |"
            )
    return out


def _speedup(m: dict) -> str:
    """``1.29×, 1.10-1.37× over 10 pairs`` (paired timings), else the ratio of the two figures."""
    if "speedup" not in m:
        return f"{m['fps_bf16'] / m['fps_fp32']:.2f}×"
    lo, hi = m["speedup_range"]
    return f"{m['speedup']:.2f}×, {lo:.2f}-{hi:.2f}× over {m['pairs']} pairs"


def bf16_cost(d: dict, path: Path = BF16_REPORT) -> list[str]:
    """The bf16-on-the-CPU table (``scripts/bf16_cost.py``): cost per preset, output differences, speed."""
    presets = d["presets"]
    out = [
        f"Measured by `{published_command(d['command'], path)}` ([`{path.as_posix()}`]({path.as_posix()}), "
        f"{d['created'][:10]}, {_version(d)}) on {cpu_label(d['cpu'])}, torch {d['torch_version']}: each model "
        f"on the held-out test photos of `kdsharp eval` ({d['images']} photos; fewer where the table says so) "
        "in float32 and under bf16 autocast; the cost is float32's mean PSNR minus bf16's, and the speed is "
        "the bare model's at 1920x1080 on 2 threads, the two timed in turn in one process (the median of "
        "each and of the pairs' ratios):",
        "",
        "| model | photos | default on such a CPU | "
        + " | ".join(f"`{p}` cost" for p in presets)
        + " | outputs: mean · largest difference (levels) | values identical | frames/s float32 → bf16 |",
        "|---|---:|---|" + "---:|" * len(presets) + "---:|---:|---:|",
    ]
    for name, m in d["models"].items():
        rows = m["presets"].values()
        mean_abs = sum(r["mean_abs_levels"] for r in rows) / len(rows)
        same = sum(r["identical"] for r in rows) / len(rows)
        out.append(
            f"| `{name}` | {m['images']} | {m['default']} | "
            + " | ".join(f"{m['presets'][p]['cost_db']:.4f} dB" for p in presets)
            + f" | {mean_abs:.3f} · {max(r['max_abs_levels'] for r in rows)} | {100 * same:.1f}% | "
            f"{m['fps_fp32']:.3g} → {m['fps_bf16']:.3g} ({_speedup(m)}) |"
        )
    return out


def realtime_all(files: list[Path]) -> list[str]:
    """Every machine's real-time block, each under a line that names its CPU, AVX-2-only ones first
    (the machines the speed targets must hold on)."""
    reports = [(f, json.loads(f.read_text())) for f in files]
    reports.sort(key=lambda fr: bool(fr[1]["cpu"].get("avx512")))
    out: list[str] = []
    for f, rt in reports:
        if out:
            out.append("")
        kind = "AVX-512" if rt["cpu"].get("avx512") else "AVX2 only, no AVX-512"
        native = next(
            (
                f"{r['cpu']['model_name']} (AVX2 only, family {r['cpu']['family']} model {r['cpu']['model']})"
                for _, r in reports
                if not r["cpu"].get("avx512")
            ),
            None,
        )
        out += [
            f"**{rt['cpu']['model_name']}, family {rt['cpu']['family']} model {rt['cpu']['model']} ({kind})**",
            "",
            *realtime(rt, f, native),
        ]
    return out


def realtime(rt: dict, path: Path = Path("docs/bench/realtime.json"), avx2_machine: str | None = None) -> list[str]:
    """The "Real-time video" figures from one report of ``scripts/realtime_bench.py`` (``path``);
    ``avx2_machine``: the CPU of another report measured on an AVX2-only machine, if any."""
    s = rt["sharpen"]
    out = [
        f"Measured by `{published_command(rt['command'], path)}` ([`{path.as_posix()}`]({path.as_posix()}), "
        f"{rt['created'][:10]}, {_version(rt)}) on {cpu_label(rt['cpu'])}, torch {rt['torch_version']}, "
        "each run in a new process, "
        f"on {rt['clip_seconds']:g} s synthetic 30 fps H.264+AAC clips (`pan`: everything moves; `talking`: a "
        "static room, a person in the centre). Frames/s exclude model loading; CPU ms per frame (all threads) "
        "do not depend on the load and are the figures to compare across machines, though the same machine's "
        "speed drifts between sessions (unchanged code, the x264 rows included): compare figures from one run.",
        "",
        "| `kdsharp sharpen CLIP --model M` | frames/s end to end | target | CPU ms/frame: decode · model · "
        "encode+rest = total | bottleneck | encoder | load avg before |",
        "|---|---:|---:|---|---|---|---:|",
    ]
    for key, r in s.items():
        clip, model, *rest = key.split("/")
        loaded = rest == ["loaded"]
        label = (
            f"{clip.replace('_', ' ')}, `{model}`"
            + (", one busy process per core" if loaded else "")
            + (" `--compile`" if rest == ["compile"] else "")
            + (" `--half` (bf16 on this CPU)" if rest == ["half"] else "")
            + (" `--no-half` (float32)" if rest == ["fp32"] else "")
            + (" (bf16: its default on this CPU)" if not rest and r.get("precision") == "bf16" else "")
        )
        cpu = r["cpu_ms"]
        target = RT_TARGETS.get(f"{clip}/{model}" if rest in (["half"], ["fp32"]) else key)
        tgt = f"≥ {target:g}: {_met(r['e2e_fps'], target)}" if target else ""
        if loaded:
            quiet = s.get(f"{clip}/{model}")
            if quiet:
                fall = 1 - r["e2e_fps"] / quiet["e2e_fps"]
                tgt = f"falls ≤ 50%: {fall:.0%} ({'met' if fall <= 0.5 else 'not met'})"
        out.append(
            f"| {label} | **{r['e2e_fps']:.1f}** | {tgt} | {cpu['decode']:.1f} · {cpu['model']:.1f} · "
            f"{cpu['encode']:.1f} = {cpu['total']:.1f} | {r['bottleneck']} | {r.get('encoder', '')} | "
            f"{r['load_avg_before']:g} |"
        )
    live = rt.get("live") or {}
    if live:
        out += [
            "",
            "| `kdsharp live --source CLIP --sink out.mp4 --model fast` (a 30 fps clip read at its frame rate) | "
            "frames processed | dropped (target < 1% at 720p) | mean latency | model workers | tiles reused | "
            "CPU s (all threads) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, r in live.items():
            clip, *rest = key.split("/")
            label = (
                clip.replace("_", " ")
                + (" (a webcam recording: sensor noise)" if clip.endswith("_cam") else "")
                + (", one busy process per core" if "loaded" in rest else "")
                + "".join(f" `--reuse-tolerance {w.removeprefix('tolerance')}`" for w in rest if w.startswith("tol"))
            )
            reused = "–" if r.get("reused_pct") is None else f"{r['reused_pct']}%"
            cpu = f"{r['cpu_s']:.1f}" if "cpu_s" in r else "–"
            out.append(
                f"| {label} | {r['processed']} | {r['dropped']} ({r['dropped_pct']:.1f}%) | "
                f"{r['latency_ms']} ms | {r.get('workers', 1)} | {reused} | {cpu} |"
            )
    reuse = rt.get("reuse")
    if reuse and f"{reuse['clip']}/fast" in s:
        on, off = reuse["on"], s[f"{reuse['clip']}/fast"]
        out += [
            "",
            f"Temporal reuse on the {reuse['clip'].replace('_', ' ')} clip (`--reuse`, "
            + (f"tolerance {on['reuse_tolerance']} levels, " if on.get("reuse_tolerance") else "exact, ")
            + f"{plural(on.get('workers', 1), 'model worker')} of {plural(on.get('threads', 1), 'thread')}): "
            f"{100 * on['reused']:.0f}% of the tiles skipped"
            + (
                f", model {on['cpu_ms']['model']:.1f} CPU ms per frame against {off['cpu_ms']['model']:.1f} without "
                "reuse, "
                if on.get("threads", 1) == 1
                else " (its model CPU ms are left out: they count the worker's own thread, not its helper threads), "
            )
            + f"{on['e2e_fps']:.1f} frames/s end to end against {off['e2e_fps']:.1f} without; "
            + (
                "its PSNR cost on such sources is in the temporal-reuse table below."
                if on.get("reuse_tolerance")
                else "the output is bit-identical to the full computation (tested: `tests/test_infer_frames.py`)."
            ),
        ]
    enc = rt.get("encoder")
    if enc:
        sizes = list(enc)
        presets = list(next(iter(enc.values()))["presets"])
        first = next(iter(enc.values()))
        out += [
            "",
            f"x264 speed presets at CRF {first['crf']} on the first {first['frames']} frames of the pan clips "
            "(CPU ms per frame of all encoder threads; PSNR of the re-encoded luma against the input), what "
            f"`--encoder-preset` trades (defaults now: {encoder_defaults_text()}):",
            "",
            "| preset | " + " | ".join(f"{enc[k]['size']} CPU ms/frame | Mbit/s | PSNR" for k in sizes) + " |",
            "|---|" + "---:|---:|---:|" * len(sizes),
        ]
        for p in presets:
            cells = []
            for k in sizes:
                r = enc[k]["presets"][p]
                cells += [f"{r['cpu_ms_per_frame']:.1f}", f"{r['mbit_s']:.2f}", f"{r['psnr_y']:.1f} dB"]
            out.append(f"| {p} | " + " | ".join(cells) + " |")
    bare = rt.get("bare") or {}
    if bare:
        fast = bare.get("fast")
        native_avx2 = not rt["cpu"].get("avx512")
        out += [
            "",
            "Bare models in the same session (`kdsharp bench --model M --json`, 1920x1080, "
            + ", ".join(
                f"`{m}` {r['fps']:.1f} frames/s"
                + (f" ({r['yplane_fps']:.1f} on the Y plane, as video runs it)" if "yplane_fps" in r else "")
                + (" in bf16, its default on this CPU" if r.get("precision") == "bf16" else "")
                for m, r in bare.items()
            )
            + (f"; target for `fast` on an AVX2-only CPU ≥ 30: {_met(fast['fps'], 30)}" if native_avx2 and fast else "")
            + ").",
        ]
    avx2 = rt.get("avx2_emulated")
    if avx2:
        ratio = avx2["bare_fast"]["fps"] / avx2["bare_fast_native"]["fps"]
        out += [
            "",
            f"AVX2 code only ({', '.join(f'`{k}={v}`' for k, v in avx2['env'].items())}: the kernels an "
            f"AVX2-only CPU runs, on these cores): bare `fast` {avx2['bare_fast']['fps']:.1f} frames/s against "
            f"{avx2['bare_fast_native']['fps']:.1f} with AVX-512 in the same session ({ratio:.2f}×; target "
            f"≥ 30: {_met(avx2['bare_fast']['fps'], 30)} in this emulation), 1080p end to end "
            f"{avx2['sharpen_1080p_pan_fast']['e2e_fps']:.1f} frames/s (≥ 24: "
            f"{_met(avx2['sharpen_1080p_pan_fast']['e2e_fps'], 24)})"
            + (
                f", `student` {avx2['sharpen_1080p_pan_student']['e2e_fps']:.1f} frames/s (≥ 8: "
                f"{_met(avx2['sharpen_1080p_pan_student']['e2e_fps'], 8)})"
                if "sharpen_1080p_pan_student" in avx2
                else ""
            )
            + ". This emulates the instruction set, not an AVX2-only machine, whose cores and clocks differ"
            + (f": the {avx2_machine} block measures one." if avx2_machine else "; none was available to measure."),
        ]
    return out


def demo(d: dict) -> list[str]:
    """The `kdsharp demo` line from its report.json (copied to docs/demo.json)."""
    w, h = d["size"]
    return [
        f"`kdsharp demo` ([`docs/demo.json`](docs/demo.json): the {w}×{h} sample clip, `{d['preset']}`, "
        f"{d['frames']} frames, re-encoded) with the shipped `{d['model']}`: PSNR {d['psnr_in']:.2f} → "
        f"{d['psnr_out']:.2f} dB ({d['psnr_out'] - d['psnr_in']:+.2f} dB), SSIM {d['ssim_in']:.3f} → "
        f"{d['ssim_out']:.3f}."
    ]


def _fewer_photos(d: dict) -> tuple[list[str], int | None]:
    """The rows a report ran on fewer photos than the others (the heavy ones) and how many per set."""
    heavy = d.get("heavy") or {}
    n = min((heavy.get("images_per_set") or {}).values(), default=None)
    return (heavy.get("rows", []), n) if heavy.get("rows") and n is not None and n < d["n_images"] else ([], None)


def _heavy_clause(d: dict, tail: str = "") -> str:
    """'; `teacher` on N evenly spaced photos of each preset' (+ ``tail``) where a row ran on fewer photos."""
    rows, n = _fewer_photos(d)
    return f"; {', '.join(f'`{r}`' for r in rows)} on {n} evenly spaced photos of each preset{tail}" if rows else ""


def _mean_gain(images: list[dict], row: str) -> float:
    """Mean PSNR gain (dB) of ``row`` over the input on per-image report entries."""
    return sum(v[row]["psnr"] - v["input"]["psnr"] for v in images) / len(images)


def ensemble(report: dict) -> list[str]:
    """The self-ensemble table from its own `kdsharp eval` report (rows NAME and NAME@xN)."""
    from kdsharp.registry import split_ensemble

    d, presets = report["data"], list(report["presets"])
    out = [
        f"`kdsharp eval --models {','.join(report['rows'][2:])} --no-fps` ([`docs/eval/ensemble/report.md`]"
        f"(docs/eval/ensemble/report.md)): the {d['n_images']} test-split photos, presets "
        f"{', '.join(f'`{p}`' for p in presets)} (seed {d['seed']}) as above"
        + _heavy_clause(d, " (the same ones for both)")
        + ". ΔPSNR (dB) over the input; forward passes per frame (the time it costs, in multiples of the model's):",
        "",
        "| Method | passes | mean ΔPSNR | mean ΔSSIM | "
        + " | ".join(f"{p} ΔPSNR" for p in presets)
        + " | every preset ≥ +0.2 dB | above the tuned unsharp mask on every preset |",
        "|---|---:|---:|---:|" + "---:|" * len(presets) + "---|---|",
    ]
    for row in report["rows"][1:]:
        o = report["overall"][row]
        per = [report["presets"][p]["rows"] for p in presets]
        passes = "–" if row == "unsharp" else str(split_ensemble(row)[1])
        every = all(r[row]["delta_psnr"] >= 0.2 for r in per)
        above = all(r[row]["delta_psnr"] > r["unsharp"]["delta_psnr"] for r in per)
        dssim = o.get("delta_ssim", o["ssim"] - report["overall"]["input"]["ssim"])
        out.append(
            f"| {ROW_TITLES.get(row, row)} | {passes} | {_d(o['delta_psnr'])} | {dssim:+.4f} | "
            + " | ".join(_d(r[row]["delta_psnr"]) for r in per)
            + f" | {'yes' if every else 'no'} | {'–' if row == 'unsharp' else ('yes' if above else 'no')} |"
        )
    return out


def peers(report: dict) -> list[str]:
    """The table against installable peers from its own `kdsharp eval` report (rows ``peer:NAME``)."""
    d, presets, rows = report["data"], list(report["presets"]), report["rows"]
    peer_rows = [r for r in rows if is_peer(r)]
    fps = report.get("fps") or {}
    out = [
        f"`kdsharp eval --models {','.join(rows[2:])}` ([`docs/eval/peers/report.md`](docs/eval/peers/report.md)): "
        f"the {d['n_images']} test-split photos, presets {', '.join(f'`{p}`' for p in presets)} (seed {d['seed']}) "
        "as above"
        + _heavy_clause(d)
        + ". ΔPSNR (dB) over the input; frames/s of the bare method on a 1920x1080 frame"
        + (f" on {fps['cpu']} ({fps.get('threads', '?')} threads)" if fps.get("cpu") else "")
        + ":",
        "",
        "| Method | mean ΔPSNR | mean ΔSSIM | "
        + " | ".join(f"{p} ΔPSNR" for p in presets)
        + " | FPS CPU@1080p | "
        + " | ".join(f"above `{r}` on every preset" for r in peer_rows)
        + " |",
        "|---|---:|---:|" + "---:|" * len(presets) + "---:|" + "---|" * len(peer_rows),
    ]
    for row in rows[1:]:
        o = report["overall"][row]
        per = [report["presets"][p]["rows"] for p in presets]
        dssim = o.get("delta_ssim", o["ssim"] - report["overall"]["input"]["ssim"])
        f = report["methods"].get(row, {}).get("fps_cpu_1080p")
        above = [
            "–" if row == peer else ("yes" if all(r[row]["delta_psnr"] > r[peer]["delta_psnr"] for r in per) else "no")
            for peer in peer_rows
        ]
        out.append(
            f"| {ROW_TITLES.get(row, row)} | {_d(o['delta_psnr'])} | {dssim:+.4f} | "
            + " | ".join(_d(r[row]["delta_psnr"]) for r in per)
            + f" | {format_fps(f)} | "
            + " | ".join(above)
            + " |"
        )
    for row in _fewer_photos(d)[0]:  # a row on fewer photos: the peers on the same ones, for a fair word
        imgs = [[v for v in report["presets"][p]["images"].values() if row in v] for p in presets]
        gains = " / ".join(_d(_mean_gain(i, row)) for i in imgs)
        same = [
            f"`{peer}` {' / '.join(_d(_mean_gain(i, peer)) for i in imgs)} dB against `{row}` {gains}"
            for peer in peer_rows
        ]
        out += ["", f"On the photos `{row}` ran on ({', '.join(presets)}): " + "; ".join(same) + "."]
    return out


def render(report: dict, train_dir: Path, bench_dir: Path = Path("docs/bench")) -> str:
    return "\n".join(
        [
            BEGIN,
            *quality(report),
            *training(train_dir),
            *lineage_curves(train_dir, report),
            *detail_ablation(train_dir),
            *ablation(train_dir, report),
            *race(train_dir),
            *race_ablation(train_dir),
            *speed(bench_dir),
            END,
        ]
    )


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
    new = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    rt_files = realtime_files()
    if RT_BEGIN in new and RT_END in new and rt_files:
        rt_block = "\n".join([RT_BEGIN, *realtime_all(rt_files), RT_END])
        new = new[: new.index(RT_BEGIN)] + rt_block + new[new.index(RT_END) + len(RT_END) :]
    demo_file = Path("docs/demo.json")
    if DEMO_BEGIN in new and DEMO_END in new and demo_file.exists():
        d_block = "\n".join([DEMO_BEGIN, *demo(json.loads(demo_file.read_text())), DEMO_END])
        new = new[: new.index(DEMO_BEGIN)] + d_block + new[new.index(DEMO_END) + len(DEMO_END) :]
    if ENS_BEGIN in new and ENS_END in new and ENSEMBLE_REPORT.exists():
        e_block = "\n".join([ENS_BEGIN, *ensemble(json.loads(ENSEMBLE_REPORT.read_text())), ENS_END])
        new = new[: new.index(ENS_BEGIN)] + e_block + new[new.index(ENS_END) + len(ENS_END) :]
    if PEERS_BEGIN in new and PEERS_END in new and PEERS_REPORT.exists():
        p_block = "\n".join([PEERS_BEGIN, *peers(json.loads(PEERS_REPORT.read_text())), PEERS_END])
        new = new[: new.index(PEERS_BEGIN)] + p_block + new[new.index(PEERS_END) + len(PEERS_END) :]
    if REUSE_BEGIN in new and REUSE_END in new and REUSE_REPORT.exists():
        r_block = "\n".join([REUSE_BEGIN, *reuse_camera(json.loads(REUSE_REPORT.read_text())), REUSE_END])
        new = new[: new.index(REUSE_BEGIN)] + r_block + new[new.index(REUSE_END) + len(REUSE_END) :]
    if REUSE_S_BEGIN in new and REUSE_S_END in new and REUSE_S_REPORT.exists() and REUSE_S_E2E.exists():
        block = reuse_student(json.loads(REUSE_S_REPORT.read_text()), json.loads(REUSE_S_E2E.read_text()))
        s_block = "\n".join([REUSE_S_BEGIN, *block, REUSE_S_END])
        new = new[: new.index(REUSE_S_BEGIN)] + s_block + new[new.index(REUSE_S_END) + len(REUSE_S_END) :]
    if BF16_BEGIN in new and BF16_END in new and BF16_REPORT.exists():
        b_block = "\n".join([BF16_BEGIN, *bf16_cost(json.loads(BF16_REPORT.read_text())), BF16_END])
        new = new[: new.index(BF16_BEGIN)] + b_block + new[new.index(BF16_END) + len(BF16_END) :]
    if a.check:
        return 0 if new == text else 1
    a.readme.write_text(new, encoding="utf-8")
    print(f"updated {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
