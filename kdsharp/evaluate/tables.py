"""Writing the evaluation report: ``report.md`` (markdown tables) and ``report.json``.

Both are rendered from the dict that :func:`kdsharp.evaluate.evaluate` returns, and written
atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kdsharp.console import plural
from kdsharp.evaluate.baselines import UNSHARP_GRID, unsharp_label
from kdsharp.io.atomic import atomic_path

ROW_TITLES = {
    "input": "input (no processing)",
    "unsharp": "unsharp mask (best of grid)",
    "teacher": "teacher",
    "student": "student (distilled)",
    "student_nokd": "student without distillation",
    "fast": "fast (real-time)",
    "peer:realcugan": "Real-CUGAN 2x on the half-size frame (installable peer)",
    "peer:waifu2x": "waifu2x photo 2x on the half-size frame (installable peer)",
}


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "inf" if isinstance(v, float) and v == math.inf else "–"
    return format(v, fmt)


def format_fps(v) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2g}"


def _params(n) -> str:
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(n)


def subset_note(stats: dict, n_all: int | None) -> str:
    """`` (10 of 43 images)`` for a row that ran on fewer images than the input row, else ``''``."""
    if not n_all:
        return ""
    n = stats.get("n_images", n_all)
    return f" ({n} of {plural(n_all, 'image')})" if n < n_all else ""


def method_table(report: dict, rows_stats: dict) -> list[str]:
    """The markdown rows of one results table: PSNR, SSIM, ΔPSNR, params, GMACs and FPS per method."""
    has_gpu = any(m.get("fps_gpu_1080p") is not None for m in report["methods"].values())
    size = (report.get("fps") or {}).get("size", "1920x1080")
    at = "1080p" if size == "1920x1080" else size
    head = ["Method", "PSNR (dB)", "SSIM", "ΔPSNR (dB)", "Params", "GMACs@1080p", f"FPS CPU@{at}"]
    if has_gpu:
        head.append(f"FPS GPU@{at}")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    n_all = (rows_stats.get("input") or {}).get("n_images")
    for row in report["rows"]:
        if row not in rows_stats:
            continue
        st, m = rows_stats[row], report["methods"][row]
        title = ROW_TITLES.get(row, row) + subset_note(st, n_all)
        cells = [
            title,
            _num(st["psnr"], ".2f"),
            _num(st["ssim"], ".4f"),
            _num(st["delta_psnr"], "+.2f"),
            _params(m.get("params")),
            _num(m.get("gmacs_1080p"), ".1f"),
            format_fps(m.get("fps_cpu_1080p")),
        ]
        if has_gpu:
            cells.append(format_fps(m.get("fps_gpu_1080p")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict) -> str:
    """The whole ``report.md`` text for a report dict."""
    d = report["data"]
    out = ["# kdsharp evaluation report", ""]
    if d["kind"] == "folder":
        out.append(f"Data: paired folder `{d['folder']}` ({plural(d['n_images'], 'image pair')}).")
    else:
        source = d.get("source", "")  # which images: the corpus test split (held out), its val split, or a folder
        held_out = "" if source and not source.startswith("corpus test split") else "held-out "
        where = f" of the {source}" if source.startswith("corpus") else f" in folder `{source}`" if source else ""
        out.append(
            f"Data: presets {', '.join(f'`{p}`' for p in d['presets'])}, each built with seed {d['seed']} "
            f"from {plural(d['n_images'], held_out + 'clean image')}{where} ({', '.join(d['sources'])})."
        )
    heavy = d.get("heavy")
    if heavy and any(n < heavy["of"][s] for s, n in heavy["images_per_set"].items()):  # not when they ran on all
        counts = sorted({f"{n} of {heavy['of'][s]}" for s, n in heavy["images_per_set"].items()})
        out.append(
            f"Heavy models ({', '.join(f'`{r}`' for r in heavy['rows'])}: {heavy['rule']}) ran on "
            f"{' / '.join(counts)} evenly spaced images of each set, to keep the default run short; their "
            "ΔPSNR compares with the input on those same images (all images: `kdsharp eval --heavy-images 0`)."
        )
    if report.get("partial"):
        out.append(f"**Partial report** ({report['partial']}): the run was stopped or is still running.")
    out.append(
        f"PSNR/SSIM on 8-bit RGB outputs against the ground truth (mean over images); "
        f"ΔPSNR is relative to the unprocessed input. Models ran on `{report['device']}`. "
        "GMACs@1080p: multiply-adds per 1920x1080 frame as the model runs (test-time local windows "
        "and self-ensemble passes included)."
    )
    fps = report.get("fps")
    if fps:
        gpu = f"; GPU: {fps['gpu']}" if fps.get("gpu") else ""
        out.append(
            f"FPS: model only, {fps['size']} input, batch 1, {fps.get('timing', 'median of a few runs')}; "
            f"CPU: {fps['cpu']} "
            f"({plural(fps['threads'], 'thread')}"
            + (f", {fps['cpu_kernels']} kernels" if fps.get("cpu_kernels") else "")  # older reports lack it
            + f"){gpu}."
        )
    else:
        out.append("FPS: not measured.")

    def fmt(k, v):
        return f"{v * 255:g}/255" if k == "threshold" and v else f"{v:g}"

    grid = " × ".join(f"{k} {{{', '.join(fmt(k, v) for v in vals)}}}" for k, vals in UNSHARP_GRID.items())
    out += [
        "",
        f"The unsharp mask is tuned on each set itself by grid search over {grid} "
        "on 8-bit PSNR: the most favourable setting a classic sharpening filter could have.",
        "",
    ]
    sets = report["presets"]
    if len(sets) > 1:
        out += ["## Overall (mean over presets)", "", *method_table(report, report["overall"]), ""]
    for name, st in sets.items():
        out += [f"## {'Preset' if d['kind'] == 'presets' else 'Set'} `{name}` ({plural(st['n_images'], 'image')})", ""]
        out += method_table(report, st["rows"])
        if name in report["unsharp"]:
            out += ["", f"Unsharp mask chosen: {unsharp_label(report['unsharp'][name])}."]
        out.append("")
    subsets = report.get("subsets") or {}
    if subsets:
        out += [
            "## Content subsets (ΔPSNR in dB, pooled over the presets)",
            "",
            "| Method | " + " | ".join(f"{t} ({plural(s['n_images'], 'image')})" for t, s in subsets.items()) + " |",
            "|---|" + "---:|" * len(subsets),
        ]
        for row in report["rows"]:
            out.append(
                f"| {ROW_TITLES.get(row, row)} | "
                + " | ".join(_num((s["rows"].get(row) or {}).get("delta_psnr"), "+.2f") for s in subsets.values())
                + " |"
            )
        out.append("")
    clean = report.get("clean") or {}
    if clean:
        out += [
            "## Clean frames (the clean images undegraded: a model should leave them alone)",
            "",
            "| Method | mean level shift (8-bit) | largest shift of one image | PSNR against the input (dB) | images |",
            "|---|---:|---:|---:|---:|",
        ]
        for row, c in clean.items():
            out.append(
                f"| {ROW_TITLES.get(row, row)} | {c['level_shift']:+.2f} | {c['max_abs_level_shift']:.2f} | "
                f"{_num(c['psnr_vs_input'], '.2f')} | {c['n_images']} |"
            )
        out.append("")
    if report["skipped"]:
        out += ["## Skipped rows", ""]
        out += [f"- `{k}`: {v}" for k, v in report["skipped"].items()]
        out.append("")
    comp = report.get("comparison")
    if comp:
        out += [
            "## Comparison",
            "",
            f"Crops from `{comp['set']}` ranked by the gain of `{comp['reference']}` "
            f"over the input, zoomed ×{comp['zoom']} (nearest neighbour).",
            "",
            f"![comparison]({comp['file']})",
            "",
        ]
    return "\n".join(out)


def _finite(obj):
    """Copy of ``obj`` with non-finite floats (identical images: PSNR inf) as None, for strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` into ``out_dir`` atomically; returns both paths."""
    out_dir = Path(out_dir)
    md, js = out_dir / "report.md", out_dir / "report.json"
    with atomic_path(md) as tmp:
        tmp.write_text(render_markdown(report), encoding="utf-8")
    with atomic_path(js) as tmp:
        tmp.write_text(json.dumps(_finite(report), indent=2), encoding="utf-8")
    return md, js


__all__ = ["render_markdown", "write_report", "format_fps", "method_table", "ROW_TITLES"]
