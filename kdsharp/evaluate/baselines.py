"""Classic baselines for the evaluation report: the best-tuned unsharp mask.

The unsharp mask (:func:`kdsharp.ops.filters.unsharp_mask`) is tuned by grid search over
amount x sigma x threshold on the evaluated set itself, i.e. it gets the most favourable setting
it could possibly have; the report states the chosen parameters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from kdsharp.ops.filters import UnsharpMask, add_detail, unsharp_detail
from kdsharp.ops.metrics import capped

#: The searched grid. ``amount`` is the gain (0 = identity, which is the "input" row already),
#: ``sigma`` the Gaussian sigma in pixels, ``threshold`` the minimum |detail| in [0,1] units.
UNSHARP_GRID: dict[str, tuple[float, ...]] = {
    "amount": (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    "sigma": (0.5, 0.8, 1.2, 1.6, 2.0, 3.0),
    "threshold": (0.0, 2.0 / 255.0),
}


def _psnr8(out: torch.Tensor, gt255: torch.Tensor) -> float:
    """8-bit PSNR (dB) of ``out`` (float [0,1]) against ``gt255`` (float, already in 0..255 levels).

    Equals :func:`kdsharp.metrics.psnr` on the saved uint8 images (same rounding), but avoids
    converting whole images to float64.
    """
    d = out.mul(255.0).round_().sub_(gt255)
    mse = float(d.mul_(d).sum(dtype=torch.float64)) / d.numel()
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _mean_psnr(outs: Sequence[torch.Tensor], gts255: Sequence[torch.Tensor]) -> float:
    """Mean over images of the 8-bit PSNR (capped at ``PSNR_CAP`` dB for identical images)."""
    vals = [capped(_psnr8(o, g)) for o, g in zip(outs, gts255, strict=True)]
    return sum(vals) / len(vals)


@torch.no_grad()
def tune_unsharp(
    lq: Sequence[torch.Tensor], gt: Sequence[torch.Tensor], grid: dict[str, Sequence[float]] | None = None
) -> dict:
    """Grid-search the unsharp mask setting with the best mean PSNR over a set.

    Args:
        lq: degraded images, each (1,3,H,W) float RGB in [0,1] (sizes may differ between images).
        gt: matching ground truths, same shapes as ``lq``.
        grid: ``{'amount': [...], 'sigma': [...], 'threshold': [...]}``; default :data:`UNSHARP_GRID`.
    Returns:
        ``{'amount', 'sigma', 'threshold', 'psnr' (mean dB of the chosen setting),
        'identity_psnr' (mean dB of the input), 'evaluated' (settings tried)}``.
    """
    if not lq or len(lq) != len(gt):
        raise ValueError(f"need the same non-zero number of inputs and targets, got {len(lq)} and {len(gt)}")
    grid = dict(UNSHARP_GRID if grid is None else grid)
    gt255 = [g.mul(255.0).round() for g in gt]
    thresholds = tuple(grid.get("threshold", (0.0,)))
    best = {"psnr": -math.inf}
    tried = 0
    for sigma in grid["sigma"]:
        details = [unsharp_detail(x, sigma) for x in lq]
        for amount, threshold in itertools.product(grid["amount"], thresholds):
            outs = [add_detail(x, d, amount, threshold) for x, d in zip(lq, details, strict=True)]
            score = _mean_psnr(outs, gt255)
            tried += 1
            if score > best["psnr"]:
                best = {"amount": float(amount), "sigma": float(sigma), "threshold": float(threshold), "psnr": score}
    best["identity_psnr"] = _mean_psnr(list(lq), gt255)
    best["evaluated"] = tried
    return best


def unsharp_baseline(params: dict) -> UnsharpMask:
    """The tuned unsharp mask as a model: (N,3,H,W) float [0,1] -> same (see :func:`tune_unsharp`)."""
    return UnsharpMask(params["amount"], params["sigma"], params.get("threshold", 0.0))


def unsharp_label(params: dict) -> str:
    """Short text for the chosen parameters, e.g. ``amount 1.5, sigma 1.2, threshold 2/255``."""
    t = params.get("threshold", 0.0)
    t_txt = "0" if t == 0 else f"{t * 255:.0f}/255"
    return f"amount {params['amount']:g}, sigma {params['sigma']:g}, threshold {t_txt}"


__all__ = ["UNSHARP_GRID", "tune_unsharp", "unsharp_baseline", "unsharp_label"]
