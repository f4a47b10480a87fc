"""Optimisation helpers: the warm-up + cosine LR factor and EMA weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers (decay warms up from 0)."""

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = float(decay)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for ema_v, v in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if ema_v.dtype.is_floating_point:
                ema_v.mul_(d).add_(v.detach().to(ema_v.dtype), alpha=1 - d)
            else:
                ema_v.copy_(v)


def warmup_cosine(warmup: int, total: int, min_ratio: float):
    """LR factor: linear 0->1 over ``warmup`` steps, then cosine 1->``min_ratio`` at ``total``."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def timed_cosine(warmup: int, min_ratio: float, progress):
    """LR factor: linear 0->1 over ``warmup`` steps, then cosine 1->``min_ratio`` as ``progress()``
    (a callable returning the run's progress in [0, 1], e.g. elapsed / time budget) goes 0 -> 1."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = min(1.0, max(0.0, float(progress())))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return factor
