"""Chroma from luma on the validation photos: `fast` and the students with and without their chroma step.

Maintainer script (issue 14). The corpus's VAL split (never the test split), presets lowbw, defocus,
h264 built with two seeds; ΔPSNR (scikit-image PSNR, RGB) over the input, per preset and mean. Rows:

* ``fast (luma only)``: the bare FastNet, chroma passed through (what shipped before 2026-12-07);
* ``fast``: the shipped model, i.e. with its ChromaFromLuma wrapper (fit at 1/2 resolution, 3x3 windows);
* ``full-resolution fit, 5x5``: the same step fitted at full resolution (``scale=1, radius=2``);
* ``4:2:0 planes``: what the YUV-native video path computes -- chroma subsampled 2x2 (as a decoder gives
  it), the fit and its result at half resolution, upsampled bilinearly for the comparison; its baseline
  is ``luma only, 4:2:0 planes`` (the same subsampling, chroma passed through);
* ``student`` / ``student_nokd``: the RGB students without (``bare``) and with their step, which fits
  their own output's chroma to its luma (the guided filter's local model, the same settings); and on
  4:2:0 planes, as their video path runs it on the encoder's planes (baseline: the bare output subsampled).

    python scripts/chroma_val.py -o docs/eval/chroma_val.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from kdsharp.evaluate.sets import build_preset_set, corpus_test_paths, load_clean_images
from kdsharp.infer.frames import ChromaStep
from kdsharp.io.images import from_tensor, to_tensor
from kdsharp.metrics import psnr
from kdsharp.models.wrappers import ChromaFromLuma, unwrap
from kdsharp.registry import load_model

PRESETS = ("lowbw", "defocus", "h264")
SEEDS = (2024, 7)


def _ycc(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)  # uint8 Y, Cr, Cb (BT.601 full range, as kdsharp's)


def _rgb(ycc: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _planes_420(lq: np.ndarray, out: np.ndarray, step: ChromaStep | None) -> np.ndarray:
    """The YUV-native path on an RGB pair: chroma subsampled 2x2, the chroma step (or a copy) on the
    planes, chroma upsampled back, the model's luma. An RGB model's video path (the step on the
    encoder's planes of its output, :meth:`~kdsharp.infer.frames.RgbFrames.finish`) is ``lq = out``."""
    h, w = lq.shape[:2]
    yl, yo = _ycc(lq), _ycc(out)
    half = [cv2.resize(yl[..., c], (w // 2, h // 2), interpolation=cv2.INTER_AREA) for c in (1, 2)]
    if step is not None:
        half = step(yl[..., 0], yo[..., 0], half)
    res = yo.copy()
    for i, c in enumerate((1, 2)):
        res[..., c] = cv2.resize(half[i], (w, h), interpolation=cv2.INTER_LINEAR)
    return _rgb(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/eval/chroma_val.json"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clean = load_clean_images(None, held_out=[str(p) for p in corpus_test_paths(None, split="val")])
    shipped = load_model("fast")
    assert isinstance(shipped, ChromaFromLuma)
    bare = unwrap(shipped)
    full_res = ChromaFromLuma(bare, radius=2, scale=1).eval()
    step = ChromaStep(shipped)
    students = {name: load_model(name) for name in ("student", "student_nokd")}
    assert all(isinstance(m, ChromaFromLuma) and not m.from_input for m in students.values())
    rows: dict[str, dict[str, list[float]]] = {}

    def add(row: str, preset: str, value: float) -> None:
        rows.setdefault(row, {}).setdefault(preset, []).append(value)

    with torch.inference_mode():
        for seed in SEEDS:
            for preset in PRESETS:
                for _, lq, gt in build_preset_set(clean, preset, seed=seed):
                    h, w = lq.shape[:2]
                    lq, gt = lq[: h - h % 2, : w - w % 2], gt[: h - h % 2, : w - w % 2]
                    x = to_tensor(lq)
                    base = psnr(lq, gt)
                    luma_only = from_tensor(bare(x))
                    add("fast (luma only)", preset, psnr(luma_only, gt) - base)
                    add("fast", preset, psnr(from_tensor(shipped(x)), gt) - base)
                    add("full-resolution fit, 5x5", preset, psnr(from_tensor(full_res(x)), gt) - base)
                    add("luma only, 4:2:0 planes", preset, psnr(_planes_420(lq, luma_only, None), gt) - base)
                    add("fast, 4:2:0 planes", preset, psnr(_planes_420(lq, luma_only, step), gt) - base)
                    for name, model in students.items():
                        bare_out = from_tensor(unwrap(model)(x))
                        add(f"{name} (bare)", preset, psnr(bare_out, gt) - base)
                        add(name, preset, psnr(from_tensor(model(x)), gt) - base)
                        as_video = _planes_420(bare_out, bare_out, None)
                        add(f"{name} (bare), 4:2:0 planes", preset, psnr(as_video, gt) - base)
                        as_video = _planes_420(bare_out, bare_out, ChromaStep(model))
                        add(f"{name}, 4:2:0 planes", preset, psnr(as_video, gt) - base)
    table = {
        row: {
            **{p: round(float(np.mean(v)), 4) for p, v in d.items()},
            "mean": round(float(np.mean([np.mean(v) for v in d.values()])), 4),
        }
        for row, d in rows.items()
    }
    report = {
        "what": "ΔPSNR (dB) over the input on the corpus VAL split, presets built with seeds "
        + ", ".join(map(str, SEEDS)),
        "n_images": len(clean),
        "rows": table,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    for row, d in table.items():
        print(f"{row:36s} " + "  ".join(f"{k} {v:+.3f}" for k, v in d.items()))


if __name__ == "__main__":
    main()
