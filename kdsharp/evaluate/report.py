"""``kdsharp eval``: quality and speed of every method on held-out data, against baselines.

Rows: the input as is, the best-tuned unsharp mask, then the models (teacher, student, fast and
the student trained without distillation). Columns: PSNR, SSIM, ΔPSNR over the input, parameters,
GMACs and frames/s at 1080p. Writes ``report.md``, ``report.json`` and ``comparison.png``.
"""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kdsharp import __version__
from kdsharp.console import progress, warn
from kdsharp.devices import resolve_device
from kdsharp.errors import KdsharpError, OutputError
from kdsharp.evaluate.baselines import tune_unsharp, unsharp_baseline
from kdsharp.evaluate.bench import benchmark, cpu_name
from kdsharp.evaluate.compare import write_comparison
from kdsharp.evaluate.peers import PREFIX as PEER_PREFIX
from kdsharp.evaluate.peers import is_peer, load_peer
from kdsharp.evaluate.sets import build_preset_set, corpus_test_paths, load_clean_images, load_paired_set
from kdsharp.evaluate.tables import write_report
from kdsharp.io.atomic import ensure_writable_dir
from kdsharp.io.images import from_tensor, to_tensor
from kdsharp.metrics import capped, psnr, ssim
from kdsharp.models import get_entry

#: The former default evaluation images (before the corpus). The default is now the corpus's test
#: split (:func:`kdsharp.evaluate.sets.corpus_test_paths`), which always contains these six (the
#: corpus builder forces them into test, see kdsharp.data.corpus.LEGACY_TEST). Still usable with
#: ``load_clean_images(None, HELD_OUT)``. ``skimage:NAME`` is a scikit-image photo; missing paths are skipped.
HELD_OUT: list[str] = [
    "skimage:coffee",
    "skimage:rocket",
    "skimage:motorcycle_left",
    "/usr/share/backgrounds/mate/nature/YellowFlower.jpg",
    "/usr/share/backgrounds/mate/nature/Wood.jpg",
    "/usr/share/backgrounds/mate/nature/Storm.jpg",
]
# the three call degradations the shipped-model targets are set on (`mixed`, the training-like mixture,
# on request)
DEFAULT_PRESETS: tuple[str, ...] = ("lowbw", "defocus", "h264")
DEFAULT_MODELS: tuple[str, ...] = ("teacher", "student", "fast", "student_nokd")
EVAL_SEED = 2024
FPS_SIZE = (1920, 1080)
#: A model this costly (multiply-adds per 1080p frame) is "heavy": by default it runs on
#: :data:`HEAVY_IMAGES` evenly spaced images of each set, and its ΔPSNR/ΔSSIM compare with the
#: input on those same images. The teacher (929 GMACs as it runs, in overlapping local windows: ~6 s
#: per 0.3 Mpx test photo on 2 cores) would otherwise take ~13 of the default eval's minutes; the
#: students (1.6-6.7 GMACs) take seconds.
HEAVY_GMACS = 100.0
HEAVY_IMAGES = 10
REPORT_FILES = ("report.md", "report.json", "comparison.png")  #: what evaluate writes into its out_dir
COMPARISON_COLUMNS = ("input", "unsharp", "fast", "student_nokd", "student", "teacher", "gt")


# ----------------------------------------------------------------------------- models
def _count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _unsharp_gmacs(params: dict, size=FPS_SIZE) -> float:
    """Multiply-adds of the separable Gaussian + sharpen step, in GMACs, for one RGB frame."""
    k = 2 * max(1, math.ceil(3 * params["sigma"])) + 1
    return 3 * (2 * k + 1) * size[0] * size[1] / 1e9


def _module_meta(model: nn.Module, label: str, params: int | None = None) -> dict:
    """Params and GMACs@1080p of a module as it runs: test-time wrappers (the teacher's local
    windows with their overlap, a self-ensemble's passes) included. GMACs are counted on a
    meta-device copy (no compute); ``params`` overrides the count of the module's own (a registered
    model's training-form parameters, as ``kdsharp models`` and its model card give them)."""
    gmacs = None
    if any(True for _ in model.parameters()):
        from kdsharp.registry import count_macs

        try:
            gmacs = count_macs(copy.deepcopy(model).to("meta"), FPS_SIZE[1], FPS_SIZE[0]) / 1e9
        except Exception:  # noqa: BLE001 - an op without a meta kernel: leave the column empty rather than fail
            gmacs = None
    return {"model": label, "params": _count_params(model) if params is None else params, "gmacs_1080p": gmacs}


def resolve_models(models: Sequence[str] | Mapping[str, object], device: str = "cpu") -> tuple[list, dict]:
    """Model rows to evaluate: ``([(row, module, meta)], {row: reason skipped})``.

    ``models`` lists registered names, checkpoint paths or installable peers (``peer:realcugan``,
    :mod:`kdsharp.evaluate.peers`), or maps row names to those or to ``nn.Module`` objects. A
    registered model whose trained weights do not ship is skipped with a warning; an unknown name,
    a bad checkpoint path or a peer that cannot load is an error (before any work is done).
    """
    if isinstance(models, Mapping):
        specs = dict(models)
    else:
        specs = {}
        for m in models:
            if str(m) in map(str, specs.values()):
                warn(f"model '{m}' is listed more than once: it gets one row")
                continue
            row = Path(str(m)).stem if Path(str(m)).suffix else str(m)
            if (row in specs and str(specs[row]) != str(m)) or (row != str(m) and row in map(str, models)):
                row = str(m)  # two files of one name, or a file named like a model in the list: its path tells
            specs.setdefault(row, m)
    rows, skipped = [], {}
    for row, spec in specs.items():
        if isinstance(spec, nn.Module):
            rows.append((row, spec.to(device).eval(), _module_meta(spec, type(spec).__name__)))
            continue
        from kdsharp import registry

        name = str(spec)
        if is_peer(name):  # an installable restorer through its own runtime: no params or GMACs to count
            rows.append((row, load_peer(name), {"model": name, "params": None, "gmacs_1080p": None}))
            continue
        base = registry.split_ensemble(name)[0]
        if get_entry(base) is None:  # a checkpoint path: any problem with it is the user's to fix
            model = registry.load_model(name, device=device)
            rows.append((row, model, _module_meta(model, name)))
            continue
        info = registry.model_info(base)
        if not info["weights_shipped"]:
            skipped[row] = (
                f"no trained weights for '{name}' in kdsharp/weights yet "
                "(train them with `kdsharp train`, or pass a checkpoint path)"
            )
            warn(f"skipping row '{row}': {skipped[row]}")
            continue
        model = registry.load_model(name, device=device)
        rows.append((row, model, _module_meta(model, name, params=info["params"])))
    return rows, skipped


@torch.no_grad()
def _apply(model: nn.Module, lq: np.ndarray, device: str) -> np.ndarray:
    """Run ``model`` on a uint8 RGB image; returns uint8 RGB of the same size."""
    out = model(to_tensor(lq).to(device))
    return from_tensor(out.float().cpu())


def _mean_stats(per_image: dict, rows: Sequence[str]) -> dict:
    """Mean PSNR/SSIM per row over the images of one set that the row ran on (``n_images``), and
    ΔPSNR/ΔSSIM: the mean gain over the input on those same images. A row with no image is left out."""
    stats = {}
    for row in rows:
        mine = [v for v in per_image.values() if row in v]
        if not mine:
            continue
        p = [capped(v[row]["psnr"]) for v in mine]
        s = [v[row]["ssim"] for v in mine]
        stats[row] = {
            "psnr": float(np.mean(p)),
            "ssim": float(np.mean(s)),
            "delta_psnr": float(np.mean(p) - np.mean([capped(v["input"]["psnr"]) for v in mine])),
            "delta_ssim": float(np.mean(s) - np.mean([v["input"]["ssim"] for v in mine])),
            "n_images": len(mine),
        }
    return stats


@torch.no_grad()
def clean_frame_change(
    clean: Sequence[tuple[str, np.ndarray]],
    rows_models: Sequence[tuple],
    device: str,
    heavy: Sequence[str] = (),
    heavy_images: int | None = None,
) -> dict:
    """How much each model changes frames that are NOT degraded (it should leave them alone).

    Per row: ``level_shift`` -- mean over images of (output mean - input mean) in 8-bit levels
    (a brightening model is positive); ``max_abs_level_shift`` -- the largest ``|shift|`` of one
    image; ``psnr_vs_input`` -- mean PSNR (dB, capped) of the output against the input;
    ``n_images``. Heavy rows run on the same evenly spaced subset as in the presets.
    """
    subset = set(spread_subset([n for n, _ in clean], heavy_images if heavy else None))
    out = {}
    for row, model, _ in rows_models:
        shifts, psnrs = [], []
        for name, img in clean:
            if row in heavy and name not in subset:
                continue
            y = _apply(model, img, device)
            shifts.append(float(y.astype(np.float64).mean() - img.astype(np.float64).mean()))
            psnrs.append(capped(psnr(y, img)))
        if shifts:
            out[row] = {
                "level_shift": float(np.mean(shifts)),
                "max_abs_level_shift": float(np.max(np.abs(shifts))),
                "psnr_vs_input": float(np.mean(psnrs)),
                "n_images": len(shifts),
            }
    return out


def heavy_rows(rows_models: Sequence[tuple], threshold_gmacs: float | None = None) -> list[str]:
    """The rows whose model costs at least ``threshold_gmacs`` (default :data:`HEAVY_GMACS`) GMACs
    per 1080p frame."""
    limit = HEAVY_GMACS if threshold_gmacs is None else threshold_gmacs
    return [r for r, _, meta in rows_models if (meta.get("gmacs_1080p") or 0.0) >= limit]


def spread_subset(names: Sequence[str], k: int | None) -> list[str]:
    """``k`` names evenly spaced over ``names`` (all of them when ``k`` is None, 0 or >= their number)."""
    n = len(names)
    if not k or k >= n:
        return list(names)
    if k == 1:
        return [names[n // 2]]
    return [names[round(i * (n - 1) / (k - 1))] for i in range(k)]


SUBSET_TAGS = ("people-face", "indoor", "text", "screen")  # what calls show: reported on their own


def add_subsets(report: dict, tags: Mapping[str, str]) -> dict:
    """Add ``report['subsets']``: per content tag (``tags``: image name -> corpus tag), the mean
    PSNR/SSIM/ΔPSNR per row pooled over every preset's images of that tag. Returns ``report``."""
    subsets = {}
    for tag in SUBSET_TAGS:
        pooled = {
            f"{preset}/{name}": v
            for preset, st in report["presets"].items()
            for name, v in st["images"].items()
            if tags.get(name) == tag
        }
        if pooled:
            n = len({k.split("/", 1)[1] for k in pooled})
            subsets[tag] = {"n_images": n, "n_items": len(pooled), "rows": _mean_stats(pooled, report["rows"])}
    report["subsets"] = subsets
    return report


def corpus_test_tags(corpus: str | Path | None = None, split: str = "test") -> dict[str, str]:
    """Image name (file stem, as the eval names it) -> content tag, for the corpus test (or val) split."""
    from kdsharp.data.corpus import corpus_dir, corpus_records

    return {Path(r["path"]).stem: r["tag"] for r in corpus_records(corpus_dir(corpus), split)}


def _methods(unsharp_params: dict, rows_models: list, fps_size: tuple[int, int]) -> dict:
    """``report['methods']``: kind, parameters and GMACs of every row."""
    return {
        "input": {"kind": "input", "params": None, "gmacs_1080p": None},
        "unsharp": {"kind": "baseline", "params": 0, "gmacs_1080p": _unsharp_gmacs(unsharp_params, fps_size)},
        **{r: {"kind": "model", **meta} for r, _, meta in rows_models},
    }


def _summarise(report: dict, row_names: Sequence[str]) -> None:
    """``report['overall']``: the mean over the sets evaluated so far, per row."""
    for row in row_names:
        vals = [s["rows"][row] for s in report["presets"].values() if row in s["rows"]]
        if vals:
            keys = ("psnr", "ssim", "delta_psnr", "delta_ssim")
            report["overall"][row] = {k: float(np.mean([v[k] for v in vals])) for k in keys}
            report["overall"][row]["n_images"] = int(sum(v["n_images"] for v in vals))


# ----------------------------------------------------------------------------- the report
def _inside(path: str | Path, folder: str | Path) -> bool:
    """True if ``path`` is ``folder`` or lies under it (symbolic links resolved)."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def _corpus_name(corpus: str | Path | None) -> str:
    from kdsharp.data.corpus import corpus_dir

    return str(corpus_dir(corpus))


def evaluate(
    data: str | Path | None = None,
    presets: Sequence[str] | None = None,
    models: Sequence[str] | Mapping[str, object] = DEFAULT_MODELS,
    out_dir: str | Path = "eval_report",
    max_images: int | None = None,
    device: str = "cpu",
    measure_fps: bool = True,
    source: str | Path | None = None,
    seed: int = EVAL_SEED,
    fps_size: tuple[int, int] = FPS_SIZE,
    corpus: str | Path | None = None,
    heavy_images: int | None = HEAVY_IMAGES,
    split: str = "test",
) -> dict:
    """Evaluate every method and write ``report.md``, ``report.json`` and ``comparison.png``.

    Args:
        data: a paired folder (``input/``, ``target/``); else ``presets`` (default: all) are built
            from ``source`` (a folder of clean images) or else from the test split of the training
            corpus ``corpus`` (default ``$KDSHARP_CORPUS`` or ~/.cache/kdsharp/corpus; an error
            naming ``kdsharp data corpus`` if it is missing); ``split="val"``: its validation split
            instead (for choosing between weights; report on ``test``).
        models: see :func:`resolve_models`. max_images: per set. device: where models run.
        measure_fps: time every method at ``fps_size`` (width, height) on the CPU, and on the GPU
            when one is available.
        heavy_images: models of at least :data:`HEAVY_GMACS` (the teacher) run on this many evenly
            spaced images of each set (None or 0: all); the report says so (``data.heavy``).
    Returns:
        the report dict (what ``report.json`` holds): per-set and overall PSNR/SSIM per row,
        per-image numbers, chosen unsharp parameters, params/GMACs/FPS per row.
    """
    if data is not None and (presets or source is not None):
        raise KdsharpError(
            f"give either data={data} (a paired folder) or degradation presets / a source folder, not both",
            params=["data"],
        )
    if seed < 0:
        raise KdsharpError(f"seed={seed}: must be an integer >= 0", params=["seed"])
    started = time.perf_counter()
    device = str(resolve_device(device))
    for folder in (data, source):  # the report must not land among the images it is about
        if folder is not None and Path(folder).is_dir() and _inside(out_dir, folder):
            raise OutputError(
                out_dir,
                f"is inside the input folder {folder}: the report would be mixed with the images it is about",
                "choose another out_dir=DIR",
                params=["out_dir"],
            )
    for name in REPORT_FILES:  # a folder in the way would fail only at the end, after all the work
        if (Path(out_dir) / name).is_dir():
            raise OutputError(
                Path(out_dir) / name,
                "is a folder where the report writes a file",
                "move it aside, or choose another out_dir=DIR",
                params=["out_dir"],
            )
    # read the data first: a wrong path fails before models load, and before the report folder is made
    if data is not None:
        sets = {Path(data).resolve().name or "data": load_paired_set(data, max_images)}
        data_info = {"kind": "folder", "folder": str(data), "n_images": len(next(iter(sets.values())))}
        rows_models, skipped = resolve_models(models, device)
    else:
        presets = list(dict.fromkeys(presets or DEFAULT_PRESETS))  # a preset named twice is one set
        held_out = [] if source is not None else [str(p) for p in corpus_test_paths(corpus, split)]
        clean = load_clean_images(source, held_out, max_images=max_images)
        rows_models, skipped = resolve_models(models, device)
        sets = {p: build_preset_set(clean, p, seed) for p in presets}
        data_info = {
            "kind": "presets",
            "presets": presets,
            "sources": [n for n, _ in clean],
            "seed": seed,
            "source": str(source) if source is not None else f"corpus {split} split ({_corpus_name(corpus)})",
            "n_images": len(clean),
        }
    out_dir = ensure_writable_dir(out_dir)

    comp_set = "mixed" if "mixed" in sets else next(iter(sets))
    row_names = ["input", "unsharp", *[r for r, _, _ in rows_models]]
    heavy = heavy_rows(rows_models)
    subset = {
        s: set(spread_subset([n for n, _, _ in items], heavy_images if heavy else None)) for s, items in sets.items()
    }
    if heavy:
        data_info["heavy"] = {
            "rows": heavy,
            "rule": f"GMACs@1080p >= {HEAVY_GMACS:g}",
            "images_per_set": {s: len(v) for s, v in subset.items()},
            "of": {s: len(items) for s, items in sets.items()},
        }
    report: dict[str, Any] = {
        "kdsharp_version": __version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "device": str(device),
        "cpu": cpu_name(),  # where the FPS column was measured (CPU rows)
        "data": data_info,
        "rows": row_names,
        "skipped": skipped,
        "methods": {},
        "unsharp": {},
        "presets": {},
        "overall": {},
    }
    samples = []
    with progress("images") as bar:
        task = bar.add_task("evaluate", total=sum(len(v) for v in sets.values()))
        for set_name, items in sets.items():
            bar.update(task, description=f"{set_name}: tune unsharp")
            params = tune_unsharp([to_tensor(lq) for _, lq, _ in items], [to_tensor(gt) for _, _, gt in items])
            report["unsharp"][set_name] = params
            methods = [("unsharp", unsharp_baseline(params).to(device)), *[(r, m) for r, m, _ in rows_models]]
            bar.update(task, description=f"{set_name}: evaluate")
            per_image = {}
            for name, lq, gt in items:
                run = [(r, m) for r, m in methods if r not in heavy or name in subset[set_name]]
                outs = {"input": lq, **{r: _apply(m, lq, device) for r, m in run}}
                per_image[name] = {r: {"psnr": psnr(o, gt), "ssim": ssim(o, gt)} for r, o in outs.items()}
                if set_name == comp_set and name in subset[set_name]:  # every column present
                    samples.append({"name": name, "gt": gt, "images": outs})
                bar.advance(task)
            report["presets"][set_name] = {
                "n_images": len(items),
                "rows": _mean_stats(per_image, row_names),
                "images": per_image,
            }
            _summarise(report, row_names)
            if len(report["presets"]) < len(sets):  # a stopped run keeps the presets finished so far
                report["partial"] = f"{len(report['presets'])} of {len(sets)} sets evaluated"
                report["methods"] = _methods(params, rows_models, fps_size)
                write_report(report, out_dir)
    report.pop("partial", None)
    _summarise(report, row_names)
    if data is None and source is None:
        add_subsets(report, corpus_test_tags(corpus, split))
    if data is None:
        report["clean"] = clean_frame_change(clean, rows_models, device, heavy, heavy_images)

    best_unsharp = report["unsharp"][comp_set]
    report["methods"] = _methods(best_unsharp, rows_models, fps_size)
    if measure_fps:
        report["fps"] = _measure_fps(
            report["methods"],
            [("unsharp", unsharp_baseline(best_unsharp)), *[(r, m) for r, m, _ in rows_models]],
            fps_size,
        )
    reference = next((r for r in ("teacher", "student", "fast") if r in row_names), None) or (
        row_names[2] if len(row_names) > 2 else "unsharp"
    )
    labels = {"input": "input", "unsharp": "unsharp", "gt": "ground truth", "student_nokd": "student no-KD"}
    labels.update({r: f"{r.removeprefix(PEER_PREFIX)} (peer)" for r in row_names if is_peer(r)})
    crops = write_comparison(
        out_dir / "comparison.png",
        samples,
        COMPARISON_COLUMNS[:-1] + tuple(r for r in row_names if r not in COMPARISON_COLUMNS) + ("gt",),
        reference,
        labels=labels,
    )
    report["comparison"] = {
        "file": "comparison.png",
        "set": comp_set,
        "reference": reference,
        "zoom": 3,
        "crops": crops,
    }
    report["files"] = {"markdown": "report.md", "json": "report.json", "comparison": "comparison.png"}
    report["seconds"] = round(time.perf_counter() - started, 1)  # wall time of the whole evaluation
    write_report(report, out_dir)
    return report


#: calls timed for a model's frames/s in ``evaluate`` (fewer if they take over 10 s): 3, as before
#: 2026-12-07, let one slow moment of a shared VM move a fast model's figure by a third
FPS_CALLS = 15
FPS_SECONDS = 10.0  #: ... and no more calls once this much timing has passed (at least 3)


def _measure_fps(methods: dict, modules: list, size: tuple[int, int]) -> dict:
    """Fill ``fps_cpu_1080p`` (and ``fps_gpu_1080p``) of ``methods``: the median of up to
    :data:`FPS_CALLS` calls after a warm-up one, stopping once :data:`FPS_SECONDS` of timing passed
    (at least 3 calls; a slower model is timed on its one warm-up call). Returns the timing setup."""
    info = {
        "size": f"{size[0]}x{size[1]}",
        "gpu": None,
        "timing": f"median of up to {FPS_CALLS} calls within ~{FPS_SECONDS:g} s",
    }
    with progress("models") as bar:
        task = bar.add_task("fps", total=len(modules))
        for row, module in modules:
            bar.update(task, description=f"fps: {row}")
            r = benchmark(module, size=size, device="cpu", iters=FPS_CALLS, warmup=1, max_seconds=FPS_SECONDS)
            methods[row]["fps_cpu_1080p"] = r["fps"]
            info.update(cpu=r["cpu"], cpu_kernels=r["cpu_kernels"], threads=r["threads"])
            if torch.cuda.is_available():
                g = benchmark(module, size=size, device="cuda", iters=10, warmup=3, max_seconds=10.0)
                methods[row]["fps_gpu_1080p"] = g["fps"]
                info["gpu"] = g.get("gpu")
            bar.advance(task)
    return info


__all__ = ["HELD_OUT", "DEFAULT_PRESETS", "DEFAULT_MODELS", "EVAL_SEED", "evaluate", "resolve_models"]
