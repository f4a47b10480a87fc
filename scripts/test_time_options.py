"""Test-time options around the shipped students, measured on the corpus's VALIDATION photos.

    python scripts/test_time_options.py -o docs/eval/test_time_val.json     # ~5 min on 2 cores

For `fast` and `student`, on the eval's presets (`lowbw`, `defocus`, `h264`) built from the 16
validation photos under two preset seeds (2024, the eval's, and 7), ΔPSNR (dB) over the input of:

* the model alone, and its geometric self-ensemble over 2, 4 and 8 symmetries (``NAME@xN``);
* the model's change gated by the input's local contrast (``s^2 / (s^2 + k^2)``, ``s`` the luma
  standard deviation in a ``win`` px box): less change in flat areas, where sharpening shows blocks;
* the model's output plus a gentle wide unsharp mask of the input (``amount * (x - G_sigma(x))``):
  the classic filter that wins the `h264` preset, added on top;
* the model's output with its chroma (Cb, Cr) guided-filtered by its own luma (He et al.'s guided
  filter, radius ``r`` px, ``eps`` on [0,1] values): colour edges pulled onto the sharpened luma
  edges, the classic cure for chroma that 4:2:0 codecs and upscaling smeared (luma-only ``fast``
  leaves the chroma as it came);
* the model run on the frame downscaled by 2 (area), its change upscaled (bilinear) onto the frame:
  a quarter of the model's time;
* an analysis row, not an option: the model's luma with the ground truth's chroma, the most that
  any chroma repair could add to it.

Choosing between such options is what the validation split is for; the test split reports the
chosen one (`kdsharp eval`). Prints a markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from kdsharp.evaluate.sets import build_preset_set, corpus_test_paths, load_clean_images
from kdsharp.io.images import from_tensor, to_tensor
from kdsharp.metrics import psnr
from kdsharp.models import ENSEMBLE_SIZES
from kdsharp.ops.chroma import chroma_from_luma_rgb
from kdsharp.ops.color import rgb_to_y
from kdsharp.ops.filters import add_detail, unsharp_detail
from kdsharp.ops.geometry import dihedral, dihedral_inverse
from kdsharp.registry import load_model

PRESETS = ("lowbw", "defocus", "h264")
SEEDS = (2024, 7)
GATES = ((5, 4.0), (5, 8.0), (9, 8.0))  # (win px, k levels)
ADDED_UNSHARP = ((0.1, 2.0), (0.1, 3.0), (0.2, 3.0))  # (amount, sigma px)
GUIDED_CHROMA = ((2, 1e-4), (4, 1e-4))  # (radius px, eps on [0,1] values)


def contrast_gate(x: torch.Tensor, win: int, k: float) -> torch.Tensor:
    """(1,1,H,W) weights in [0,1) for a (1,3,H,W) RGB [0,1] input: ``s^2/(s^2+k^2)``, ``s`` the local luma
    standard deviation (8-bit levels) in a ``win`` px box."""
    y = rgb_to_y(x)[0, 0].numpy() * 255
    m, m2 = cv2.blur(y, (win, win)), cv2.blur(y * y, (win, win))
    s2 = np.maximum(m2 - m * m, 0)
    return torch.from_numpy(s2 / (s2 + k * k))[None, None]


def guided_chroma(rgb: np.ndarray, r: int, eps: float) -> np.ndarray:
    """uint8 RGB with Cb and Cr guided-filtered by its luma (box radius ``r`` px at full resolution),
    BT.601 YCbCr in float, rounded to 8-bit RGB once (until 2026-12-07 this rounded the YCbCr planes
    to 8 bits on the way in and out: that round trip alone costs the student ~0.09 dB on these photos,
    and made the option look like a loss)."""
    x = rgb.astype(np.float32) / 255
    out = np.empty_like(x)
    chroma_from_luma_rgb(x, x, out, radius=r, eps=eps, scale=1)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def with_chroma_of(rgb: np.ndarray, other: np.ndarray) -> np.ndarray:
    """uint8 RGB with the luma of ``rgb`` and the chroma (BT.601 Cb, Cr) of ``other``."""
    ycc, src = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb), cv2.cvtColor(other, cv2.COLOR_RGB2YCrCb)
    ycc[..., 1:] = src[..., 1:]
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


@torch.inference_mode()
def half_resolution(lq: np.ndarray, model: torch.nn.Module) -> np.ndarray:
    """The model on ``lq`` downscaled by 2 (area); its change upscaled (bilinear) and added to ``lq``."""
    h, w = lq.shape[:2]
    small = cv2.resize(lq, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    change = from_tensor(model(to_tensor(small)).float()).astype(np.float32) - small
    up = cv2.resize(change, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(lq + up + 0.5, 0, 255).astype(np.uint8)


@torch.inference_mode()
def variants(name: str, lq: np.ndarray, model: torch.nn.Module, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Every option's uint8 output for one degraded image. The self-ensembles share their passes: the
    running sum over the symmetries in :class:`kdsharp.models.SelfEnsemble`'s order, read after 1, 2,
    4 and 8 of them (what ``NAME@xN`` computes)."""
    x = to_tensor(lq)
    outs, total = {}, torch.zeros_like(x)
    for code in range(8):
        total = total + dihedral_inverse(model(dihedral(x, code)).float(), code)
        if code + 1 in ENSEMBLE_SIZES:
            outs[name if code == 0 else f"{name}@x{code + 1}"] = from_tensor(total / (code + 1))
    y = to_tensor(outs[name])
    for win, k in GATES:
        outs[f"{name} gated (win {win}, k {k:g})"] = from_tensor(x + contrast_gate(x, win, k) * (y - x))
    for amount, sigma in ADDED_UNSHARP:
        outs[f"{name} + unsharp (amount {amount:g}, sigma {sigma:g})"] = from_tensor(
            add_detail(y, unsharp_detail(x, sigma), amount)
        )
    for r, eps in GUIDED_CHROMA:
        outs[f"{name} + guided chroma (r {r}, eps {eps:g})"] = guided_chroma(outs[name], r, eps)
    outs[f"{name} at half resolution"] = half_resolution(lq, model)
    outs[f"{name} with the ground truth's chroma (bound, not an option)"] = with_chroma_of(outs[name], gt)
    return outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/eval/test_time_val.json"))
    ap.add_argument("--models", default="fast,student")
    ap.add_argument(
        "--corpus", default=None, help="corpus folder (default: $KDSHARP_CORPUS or ~/.cache/kdsharp/corpus)"
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    clean = load_clean_images(None, held_out=[str(p) for p in corpus_test_paths(a.corpus, split="val")])
    names = a.models.split(",")
    models = {m: load_model(m) for m in names}
    gains: dict[str, dict[str, list[float]]] = {}
    for seed in SEEDS:
        for preset in PRESETS:
            for _, lq, gt in build_preset_set(clean, preset, seed=seed):
                base = psnr(lq, gt)
                for m in names:
                    for option, out in variants(m, lq, models[m], gt).items():
                        gains.setdefault(option, {}).setdefault(f"{preset}/{seed}", []).append(psnr(out, gt) - base)
    table = {opt: {k: float(np.mean(v)) for k, v in per.items()} for opt, per in gains.items()}
    cols = [f"{p}/{s}" for p in PRESETS for s in SEEDS]
    print(f"| option ({len(clean)} validation photos) | " + " | ".join(cols) + " | mean |")
    print("|---|" + "---:|" * (len(cols) + 1))
    for opt, per in table.items():
        print(
            f"| {opt} | " + " | ".join(f"{per[c]:+.3f}" for c in cols) + f" | {np.mean([per[c] for c in cols]):+.3f} |"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {"split": "val", "n_images": len(clean), "presets": PRESETS, "seeds": SEEDS, "delta_psnr": table}, indent=1
        )
    )
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
