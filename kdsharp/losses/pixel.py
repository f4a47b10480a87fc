"""Pixel losses between two (N,C,H,W) float tensors: L1, MSE and Charbonnier.

Each is a function (mean over every element, a 0-dim tensor) plus an ``nn.Module`` wrapper.
All are zero for identical inputs and positive otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of two same-shape tensors -> 0-dim tensor."""
    return F.l1_loss(x, y)


def mse_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of two same-shape tensors -> 0-dim tensor."""
    return F.mse_loss(x, y)


def charbonnier_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier (smooth L1) ``mean(sqrt((x-y)^2 + eps^2) - eps)`` -> 0-dim tensor.

    The ``- eps`` offset makes it exactly zero for identical inputs (the gradient is unchanged).
    """
    d = (x - y).float()
    return (torch.sqrt(d * d + eps * eps) - eps).mean()


PIXEL_LOSSES = {"l1": l1_loss, "mse": mse_loss, "l2": mse_loss, "charbonnier": charbonnier_loss}


def pixel_loss_fn(kind: str):
    """The function for ``kind`` ('l1', 'mse'/'l2', 'charbonnier'); ValueError if unknown."""
    try:
        return PIXEL_LOSSES[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown pixel loss '{kind}' (choose from {', '.join(PIXEL_LOSSES)})") from None


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return l1_loss(x, y)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mse_loss(x, y)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss`."""

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return charbonnier_loss(x, y, self.eps)


class PixelLoss(nn.Module):
    """A pixel loss chosen by name ('l1', 'mse', 'charbonnier')."""

    def __init__(self, kind: str = "charbonnier", eps: float = 1e-3):
        super().__init__()
        self.kind = kind.lower()
        self.fn = pixel_loss_fn(kind)
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "charbonnier":
            return charbonnier_loss(x, y, self.eps)
        return self.fn(x, y)

    def extra_repr(self) -> str:
        return f"kind={self.kind}"
