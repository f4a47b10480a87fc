"""Write kdsharp/weights/<name>.md model cards from the runs that made the shipped weights.

Maintainer script. Every figure is read from a file, none is typed: the pipeline run folders
(``runs.tgz`` of ``scripts/gpu_pipeline.sh``, unpacked: config.yaml, val_log.csv, baselines.json) or,
for runs of earlier machines, the records this script saved from them (docs/train/runs/*.json),
the weights' own metadata (steps, seconds, device), the training bundle's meta.json (crop counts,
corpus manifest hash) and the held-out eval report (docs/eval/report.json, per preset).
The earlier CPU training that each model was initialised from is summarised in HISTORY.

    python scripts/make_model_cards.py --runs /work/gpu1/runs --runs /work/gpu2/runs \
        --runs /work/cpu_runs/fast_long --runs /work/gpu3/runs2 \
        --runs /work/cpu_runs/exp/e1 --runs /work/cpu_runs/exp/l1 \
        --runs /work/cpu_runs/exp/s1 --runs /work/cpu_runs/exp/fc1 \
        --runs /work/cpu_runs/s11/st --runs /work/cpu_runs/s11/ft --runs /work/gpu4/runs \
        --bundle .bundle/bundle.zip --report docs/eval/report.json
(gpu3/runs2: the unpacked runs.tgz of ``scripts/gpu_race.sh``, one folder per race run.)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

import yaml

from kdsharp.data.bundle import read_meta
from kdsharp.io.weights import load_state_dict_file
from kdsharp.registry import model_info

ARCH = {
    "teacher": "Restormer-tiny: the published Restormer (MDTA channel attention, GDFN, pixel-unshuffle/"
    "shuffle, 4-level U-shape, refinement, global residual) with dim 24, blocks [1,2,2,3], 1 "
    "refinement block, heads [1,2,4,8]; frames larger than 192 px run in overlapping 192 px local "
    "windows at test time (the registered `teacher` entry)",
    "student": "ResUNet-lite: pixel-unshuffle by 4, 1x1 patch embedding, residual U-Net with 16/32/64 "
    "channels, pixel-shuffle back, predicts a residual on the input; then a full-resolution luma stage "
    "(`detail=8`: 3x3 conv on the input and output luma to 8 channels, ReLU, 3x3 conv to a luma "
    "residual added to R, G and B), grown onto the trained U-Net in run cpu5; then (a test-time wrapper, no "
    "weights, since 2026-12-07) its output's chroma refitted to its own luma in 3x3 windows at half "
    "resolution (`kdsharp.models.wrappers.ChromaFromLuma`, the guided filter's local model; the video path "
    "runs it on the encoder's 4:2:0 planes)",
    "student_nokd": "ResUNet-lite (as `student` before its full-resolution stage), trained WITHOUT the "
    "distillation terms: the ablation; the same test-time chroma step as `student`",
    "fast": "FastNet: luma (BT.601 Y) only, pixel-unshuffle by 4, 16 channels, head + 3 body + tail "
    "re-parameterizable blocks (3x3, 1x1-3x3, Sobel/Laplacian branches, identity; PReLU) folded into "
    "single 3x3 convs for deployment; the luma residual is added to R, G and B; then (a test-time wrapper, "
    "no weights, since 2026-12-07) chroma from luma: the input's Cb, Cr fitted to its luma in 3x3 windows at "
    "half resolution and evaluated at the output's luma (`kdsharp.models.wrappers.ChromaFromLuma`)",
}
HISTORY = {
    "teacher": "trained from scratch on the 2-core CPU in two stages (4000 steps at batch 8 x 64 px, then 5000 "
    "at batch 4 x 96 px; about 2 h 15 min) on 24 photos (scikit-image, mate-backgrounds) and "
    "generated images with the `mixed` degradations",
    "student": "distilled on the 2-core CPU (10 000 steps at batch 16 x 96 px, about 9 min) from the stage-1 "
    "CPU teacher on the same 24 photos",
    "student_nokd": "the same CPU student as `student`; then the same first GPU run as `student` (with "
    "distillation); only its last run drops the distillation terms (the ablation: same "
    "init, data, seed and steps as the student's last run)",
    "fast": "distilled on the 2-core CPU (6000 steps, about 7 min) from the CPU teacher on the same 24 photos",
}
# the run folders whose weights each model continued, in order: (pipeline root index, run folder)
# (roots: the two GPU pipeline runs, the CPU continuation of `fast`, the GPU race, in the order given)
# (roots 4, 5: the CPU runs that grew the full-resolution stage onto `student`, then trained it on;
#  roots 6, 7: the CPU runs on the photo corpus itself, `student` and `fast`, side by side: cpu9;
#  roots 8, 9: the student distilled on the CPU from banks of teacher-labelled crops: cpu11, then cpu11ft
#  with a second bank of calls that were not resized;
#  root 10: the teacher continued on one H200 from a bundle packed anew on a new machine: gpu4)
# Runs of earlier machines are gone: their card rows live on in docs/train/runs/<label>_<stage>.json, which
# this script writes for every run it reads from a folder (pass a missing folder for their roots).
LINEAGE = {
    "teacher": [(0, "teacher"), (3, "teacher/teacher"), (10, "teacher")],
    "student": [
        (0, "student"),
        (1, "student"),
        (4, "student"),
        (5, "student"),
        (6, "student"),
        (8, "student"),
        (9, "student"),
    ],
    "student_nokd": [(0, "student"), (1, "student_nokd")],
    "fast": [(0, "fast"), (2, "fast"), (7, "fast")],
}
ROOT_LABELS = ["gpu1", "gpu2", "cpu3", "gpu3 race", "cpu5", "cpu6", "cpu9", "cpu9", "cpu11", "cpu11ft", "gpu4"]


GPU_NAMES = {"gpu1": "H100", "gpu2": "H100", "gpu3": "H100", "gpu4": "H200"}  # the GPU of each GPU run's lease
ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "kdsharp" / "weights"  # the repo's cards (WEIGHTS_DIR may be an installed copy)
RECORDS = ROOT / "docs" / "train" / "runs"  # one JSON per lineage run: what its card row says, kept in git


def _record_path(label: str, stage: str) -> Path:
    return RECORDS / f"{label.replace(' ', '_')}_{stage}.json"


def find_runs(roots: list[Path], name: str) -> list[tuple[str, Path | None]]:
    """(label, run folder or None) of ``name``'s lineage, in order; None where the folder is not under the
    roots given (a run of an earlier machine: its committed record in docs/train/runs is used)."""
    out: list[tuple[str, Path | None]] = []
    for i, run in LINEAGE[name]:
        path = roots[i] / run if i < len(roots) else None
        out.append((ROOT_LABELS[i], path if path is not None and (path / "config.yaml").is_file() else None))
    return out


def _teacher_note(cfg: dict) -> str:
    if not any(v.get("weight") for k, v in cfg["loss"].items() if k.startswith("distill")):
        return ""
    t = str(cfg.get("teacher") or "")
    return ", teacher: " + (
        "the teacher of the same pipeline run" if t.endswith(".safetensors") and "/" in t else f"the shipped `{t}`"
    )


def _corpus_source(cfg: dict) -> dict | None:
    """The run's ``{type: corpus}`` data source, if it trained on the corpus directly."""
    return next((s for s in cfg["data"]["sources"] if isinstance(s, dict) and s.get("type") == "corpus"), None)


def _run_seconds(run: Path, cfg: dict) -> float:
    """The run's training seconds: its pipeline summary's (a run stopped early), else its time budget."""
    summary = run.parent / "pipeline.json"
    if summary.is_file():
        stage = next((s for s in json.loads(summary.read_text()) if s.get("name") == run.name), None)
        if stage and stage.get("seconds"):
            return float(stage["seconds"])
    return float(cfg["schedule"].get("max_minutes") or 0) * 60


def _bank_note(label: str, cfg: dict) -> str:
    """How a run that trained on a teacher bank (``teacher_cache``) got its crops, or ''."""
    tc = cfg.get("teacher_cache") or {}
    if not tc.get("enabled"):
        return ""
    extra = [Path(p).name for p in tc.get("extra") or []]
    more = (
        (
            " plus "
            + ", ".join(f"`{n}` x{extra.count(n)}" for n in dict.fromkeys(extra))
            + " (banks of other runs, same teacher: docs/train/cpu11_kd_bank16k.md)"
        )
        if extra
        else ""
    )
    return (
        f"\nRun {label} trained on a bank of {tc['size']} crops of its data, degraded once and labelled once by "
        f"the shipped teacher (`teacher_cache`, flipped/rotated on the fly){more}; loss: ground truth + the "
        "teacher's output."
    )


def _degradation_text(spec) -> str:
    """A run's ``data.degradation`` in words: a preset name, or a YAML file's base preset and overrides."""
    path = Path(str(spec))
    if not isinstance(spec, str) or not path.is_file():
        return f"`{spec}`"
    d = yaml.safe_load(path.read_text()) or {}
    base = d.pop("preset", "mixed")
    changes = "; ".join(f"{k} {yaml.safe_dump(v, default_flow_style=True).strip()}" for k, v in d.items())
    return f"the `{base}` family" + (f" with {changes}" if changes else "")


def run_record(label: str, run: Path, bundle_meta: dict, manifest_hash: str) -> dict:
    """What a model card says of one run, read from its folder (config.yaml, val_log.csv, baselines.json)."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    val = list(csv.DictReader(open(run / "val_log.csv")))
    base = json.loads((run / "baselines.json").read_text())
    steps = int(val[-1]["step"]) if val else 0
    seconds = _run_seconds(run, cfg)
    loss = ", ".join(f"{k} ({v.get('type', '')} x{v['weight']})" for k, v in cfg["loss"].items() if v.get("weight"))
    on_cpu = cfg.get("amp") in ("off", False, None)
    where = (
        f"fp32 on the 2-core CPU, {cfg.get('threads') or 'all'} thread(s), wall-clock" if on_cpu else "bf16, one GPU,"
    )
    row = (
        f"- {'CPU' if on_cpu else 'GPU'} run {label} `{run.name}`: {steps} steps at batch {cfg['data']['batch']} x "
        f"{cfg['data']['crop']} px crops ({where} {seconds / 60:.1f} min of training), init "
        f"`{cfg['model'].get('init')}`, AdamW lr {cfg['optim']['lr']} (warm-up {cfg['schedule']['warmup']}, "
        f"cosine over the time budget), EMA {cfg['ema']}, loss {loss}" + _teacher_note(cfg) + ".\n"
        f"  Validation (bundle val pairs): input {base['input']['psnr']:.2f} dB"
        + (f", teacher {base['teacher']['psnr']:.2f} dB" if "teacher" in base else "")
        + " -> "
        + ", ".join(f"step {r['step']}: {float(r['psnr']):.2f} dB" for r in val)
        + "."
    )
    src = _corpus_source(cfg)
    corpus = None
    if src:
        corpus = (
            f"whole photos, random {cfg['data']['crop']} px crops, drawn more often: "
            f"{', '.join(f'{k} x{v}' for k, v in (src.get('tags') or {}).items()) or 'none'}) plus the bundle's "
            f"real-codec pairs, degraded on the fly with {_degradation_text(cfg['data']['degradation'])}"
        )
    counts = bundle_meta.get("counts", {})
    return {
        "label": label,
        "stage": run.name,
        "row": row,
        "steps": steps,
        "seconds": seconds,
        "on_gpu": not on_cpu,
        "corpus": corpus,
        "bank_note": _bank_note(label, cfg).strip(),
        "bundle": {k: counts.get(k) for k in ("clean", "pairs", "val")} | {"manifest": manifest_hash[:16]},
    }


def _records(
    runs: list[tuple[str, Path | None]], stage_names: list[str], bundle_meta: dict, manifest_hash: str
) -> list[dict]:
    """One record per lineage run: made from its folder (and saved to docs/train/runs) or the saved one."""
    out = []
    for (label, run), stage in zip(runs, stage_names, strict=True):
        path = _record_path(label, stage)
        if run is not None:
            rec = run_record(label, run, bundle_meta, manifest_hash)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec, indent=1) + "\n")
        elif path.is_file():
            rec = json.loads(path.read_text())
        else:
            raise SystemExit(f"{label} `{stage}`: neither its run folder (--runs) nor {path} is here")
        out.append(rec)
    return out


def _grouped(records: list[dict], key) -> list[tuple[object, list[str]]]:
    """(value, labels) for each distinct ``key(record)`` (not None), in order of first appearance."""
    groups: dict[str, tuple[object, list[str]]] = {}
    for r in records:
        v = key(r)
        if v is not None:
            groups.setdefault(json.dumps(v, sort_keys=True), (v, []))[1].append(r["label"])
    return list(groups.values())


def card(
    name: str, runs: list[tuple[str, Path | None]], bundle_meta: dict, manifest_hash: str, report: dict | None
) -> str:
    info = model_info(name)
    w = CARDS / f"{name}.safetensors"
    _, meta = load_state_dict_file(w)
    records = _records(runs, [run.split("/")[-1] for _, run in LINEAGE[name]], bundle_meta, manifest_hash)
    rows = [r["row"] for r in records]
    total_steps, total_s = sum(r["steps"] for r in records), sum(r["seconds"] for r in records)
    gpus = ", ".join(
        dict.fromkeys(f"one NVIDIA {GPU_NAMES.get(r['label'].split()[0], 'GPU')}" for r in records if r["on_gpu"])
    )
    by_bundle = _grouped(records, lambda r: r["bundle"])
    bundles = "; ".join(
        f"{'run(s) ' + ', '.join(labels) + ': ' if len(by_bundle) > 1 else ''}"
        f"{b['clean']} clean 192 px crops and {b['pairs']} real-codec "
        f"pairs (x264/VP8/VP9/MPEG-4), {b['val']} validation "
        f"pairs, corpus manifest sha256 `{b['manifest']}`"
        for b, labels in by_bundle
    )
    corpus_note = "".join(
        f"\nRun(s) {', '.join(labels)} drew their crops from the corpus's TRAIN split itself ({c}."
        for c, labels in _grouped(records, lambda r: r["corpus"])
    )
    bank_notes = "".join(f"\n{r['bank_note']}" for r in records if r["bank_note"])
    held = ""
    if report and name in report.get("rows", []):
        per = ", ".join(f"{p} {d['rows'][name]['delta_psnr']:+.2f}" for p, d in report["presets"].items())
        data = report.get("data", {})
        held = (
            f"\n## Held-out evaluation\n\n`kdsharp eval` ({data.get('n_images', '?')} images of the corpus test split, "
            f"seed {data.get('seed')}): ΔPSNR over the input {report['overall'][name]['delta_psnr']:+.2f} dB "
            f"overall ({per}); SSIM {report['overall'][name]['ssim']:.4f} vs input "
            f"{report['overall']['input']['ssim']:.4f}. Full table: docs/eval/report.md.\n"
        )
    selected = (
        f"\n- Selected: {meta['selected']}, step {meta.get('iters')} of the last run (validation "
        f"{meta.get('val_psnr')} dB), not its last step."
        if meta.get("selected")
        else ""
    )
    return f"""# Model card: `{name}`

- Role: {info["role"]}; loads with `kdsharp.load_model("{name}")` or `--model {name}`.
- Architecture: {ARCH[name]}.
- Parameters: {info["params"]:,}; {info["gmacs_1080p"]:.1f} GMACs per 1920x1080 frame.
- Weights: `kdsharp/weights/{name}.safetensors`, fp16 EMA weights ({w.stat().st_size / 1e6:.2f} MB); metadata
  `arch`, `arch_kwargs`, `iters` {meta.get("iters")}, `device` {meta.get("device")}.{selected}

## Training (accumulated: each stage starts from the previous stage's weights)

1. Earlier: {HISTORY[name]}.
2. Then, with `kdsharp train pipeline` from the training bundle (GPU runs on {gpus} via `scripts/gpu_race.sh` or
   `scripts/gpu_pipeline.sh`; CPU runs on the project's 2-core CPU), {total_steps} more steps in
   {total_s / 60:.1f} min of training:
{chr(10).join("   " + r.replace(chr(10), chr(10) + "   ") for r in rows)}

Data of stage 2: the training bundle `kdsharp train pack -c configs/bundle.yaml`, cut from the TRAIN split of
the corpus `kdsharp data corpus` (validation pairs from its VAL split), weighted towards faces, rooms, text and
screens ({bundles}), clean crops degraded on the fly with the
`wide` family (blur, noise, JPEG/WebP on the downscaled frame, resizing with 4 interpolations).{corpus_note}{bank_notes}
The corpus TEST split and the Debian package `plasma-workspace-wallpapers` were never used.
{held}
## Limits
Short training (minutes of one GPU, or CPU hours); see the README's "What limits it".
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--runs",
        type=Path,
        action="append",
        default=[],
        help="unpacked pipeline runs folder, one per LINEAGE root in order (earlier roots: a missing folder)",
    )
    ap.add_argument("--bundle", type=Path, default=Path(".bundle/bundle.zip"))
    ap.add_argument("--corpus", type=Path, default=Path("~/.cache/kdsharp/corpus").expanduser())
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "eval" / "report.json")
    ap.add_argument("--names", default="teacher,student,student_nokd,fast")
    ap.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed card differs from what the records give",
    )
    a = ap.parse_args()
    runs = {name: find_runs(a.runs, name) for name in a.names.split(",")}
    bundle_meta, manifest_hash = {}, ""
    if any(run for lineage in runs.values() for _, run in lineage):  # new records to make
        bundle_meta = read_meta(a.bundle)
        # the manifest the bundle was cut from (the bundle records it), else the corpus's own
        manifest_hash = (
            next(iter((bundle_meta.get("corpus_manifests") or {}).values()), None)
            or hashlib.sha256((a.corpus.expanduser() / "manifest.json").read_bytes()).hexdigest()
        )
    report = json.loads(a.report.read_text()) if a.report.is_file() else None
    stale = []
    for name, lineage in runs.items():
        text, path = card(name, lineage, bundle_meta, manifest_hash, report), CARDS / f"{name}.md"
        if a.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print("wrote", path)
    if stale:
        raise SystemExit(f"stale model cards (run python scripts/make_model_cards.py): {', '.join(stale)}")


if __name__ == "__main__":
    main()
