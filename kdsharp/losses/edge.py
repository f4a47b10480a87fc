"""Edge and frequency losses between (N,C,H,W) float tensors in [0,1].

* :func:`sobel_loss` - L1 between Sobel gradients (:func:`kdsharp.ops.filters.spatial_gradient`).
* :func:`laplacian_pyramid_loss` - Charbonnier between Laplacian-pyramid bands; with one level it
  is MPRNet's "edge loss" (image minus its Gaussian-blurred, down/up-sampled self).
* :func:`fft_loss` - L1 between 2-D real FFTs (complex parts or amplitudes), orthonormal scaling.

Every function returns a 0-dim tensor, zero for identical inputs and positive otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.losses.pixel import charbonnier_loss
from kdsharp.ops.filters import filter2d, spatial_gradient

# MPRNet's 5-tap binomial-like kernel.
_PYR_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def _pyr_kernel(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor(_PYR_TAPS, device=x.device, dtype=x.dtype)
    return torch.outer(k, k)


def _laplacian_band(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(band, down): band = x - up(down(blur(x))) at x's size, down = the half-size image."""
    k = _pyr_kernel(x)
    h, w = x.shape[-2:]
    blurred = filter2d(x, k, padding="replicate")
    down = blurred[..., ::2, ::2]
    up = torch.zeros_like(x)
    up[..., ::2, ::2] = down * 4.0
    filtered = filter2d(up, k, padding="replicate")
    return x - filtered[..., :h, :w], down


def laplacian_pyramid(x: torch.Tensor, levels: int = 1) -> list[torch.Tensor]:
    """Band-pass images of (N,C,H,W), finest first; ``levels`` bands (the residual is dropped)."""
    bands = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 4:
            break
        band, cur = _laplacian_band(cur)
        bands.append(band)
    return bands


def laplacian_pyramid_loss(x: torch.Tensor, y: torch.Tensor, levels: int = 1, eps: float = 1e-3) -> torch.Tensor:
    """Mean Charbonnier distance over ``levels`` Laplacian-pyramid bands (1 = MPRNet edge loss)."""
    bx, by = laplacian_pyramid(x.float(), levels), laplacian_pyramid(y.float(), levels)
    if not bx:  # images too small for one band: fall back to the plain pixel distance
        return charbonnier_loss(x, y, eps)
    return torch.stack([charbonnier_loss(a, b, eps) for a, b in zip(bx, by, strict=True)]).mean()


def sobel_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between Sobel dx/dy of (N,C,H,W) tensors."""
    return F.l1_loss(spatial_gradient(x.float()), spatial_gradient(y.float()))


def fft_loss(x: torch.Tensor, y: torch.Tensor, mode: str = "complex") -> torch.Tensor:
    """Mean L1 between ``rfft2`` spectra (norm='ortho') of (N,C,H,W) tensors.

    ``mode='complex'`` compares real and imaginary parts (phase-aware), ``'amplitude'`` |F| only
    (then zero for any two images with equal spectra magnitude, e.g. a shifted copy).
    """
    fx = torch.fft.rfft2(x.float(), norm="ortho")
    fy = torch.fft.rfft2(y.float(), norm="ortho")
    if mode == "amplitude":
        return F.l1_loss(fx.abs(), fy.abs())
    if mode == "complex":
        return F.l1_loss(torch.view_as_real(fx), torch.view_as_real(fy))
    raise ValueError(f"unknown fft loss mode '{mode}' (choose 'complex' or 'amplitude')")


class SobelLoss(nn.Module):
    """Module form of :func:`sobel_loss`."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sobel_loss(x, y)


class LaplacianPyramidLoss(nn.Module):
    """Module form of :func:`laplacian_pyramid_loss`."""

    def __init__(self, levels: int = 1, eps: float = 1e-3):
        super().__init__()
        self.levels, self.eps = levels, eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return laplacian_pyramid_loss(x, y, self.levels, self.eps)


class FFTLoss(nn.Module):
    """Module form of :func:`fft_loss`."""

    def __init__(self, mode: str = "complex"):
        super().__init__()
        if mode not in ("complex", "amplitude"):
            raise ValueError(f"unknown fft loss mode '{mode}' (choose 'complex' or 'amplitude')")
        self.mode = mode

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return fft_loss(x, y, self.mode)


def build_edge_loss(kind: str = "sobel", **kwargs) -> nn.Module:
    """Edge loss module by name: 'sobel', 'laplacian' (levels, eps) or 'fft' (mode)."""
    kinds = {"sobel": SobelLoss, "laplacian": LaplacianPyramidLoss, "fft": FFTLoss}
    if kind not in kinds:
        raise ValueError(f"unknown edge loss '{kind}' (choose from {', '.join(kinds)})")
    return kinds[kind](**kwargs)
