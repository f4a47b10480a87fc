"""Which validated training step to keep: the rule behind ``best.pth`` (config ``val.select``).

``psnr``: the highest mean PSNR over the whole validation set.
``worst_group``: the largest *smallest* per-group change (one group per degradation preset),
measured against the weights the run started from (``model.init``; else the unprocessed input).
The shipping rule of this project is that no preset may lose; a mean can hide a loss on one preset
behind a gain on another, this rule cannot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SELECT_RULES = ("psnr", "worst_group")


def group_psnrs(metrics: Mapping[str, float]) -> dict[str, float]:
    """``{group: PSNR}`` from a validation result's ``psnr_<group>`` entries (empty without groups)."""
    return {k[len("psnr_") :]: float(v) for k, v in metrics.items() if k.startswith("psnr_")}


def selection_score(metrics: Mapping[str, float], reference: Mapping[str, float] | None, rule: str) -> float:
    """The number (dB) a run's best step maximises under ``rule`` (:data:`SELECT_RULES`).

    Args:
        metrics: a validation result, ``{'psnr', 'ssim', 'psnr_<group>'...}`` (dB).
        reference: the validation of what the run is compared with (starting weights or input),
            same keys; needed by 'worst_group' only.
        rule: 'psnr' -> ``metrics['psnr']``; 'worst_group' -> ``min_g(psnr_g - reference_g)``
            over the groups both have (the mean PSNR's change when there are no groups).
    """
    if rule == "psnr":
        return float(metrics["psnr"])
    if rule != "worst_group":
        raise ValueError(f"unknown selection rule {rule!r} (choose from {', '.join(SELECT_RULES)})")
    if not reference:
        raise ValueError("the 'worst_group' rule needs a reference validation")
    ours, ref = group_psnrs(metrics), group_psnrs(reference)
    shared = sorted(set(ours) & set(ref))
    changes = [ours[g] - ref[g] for g in shared] or [float(metrics["psnr"]) - float(reference["psnr"])]
    return min(changes) if all(math.isfinite(c) for c in changes) else -math.inf
