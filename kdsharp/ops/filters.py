"""Classic linear filters on (N,C,H,W) float tensors: Gaussian, Sobel, Laplacian, unsharp mask.

Each operation is a function plus an ``nn.Module`` wrapper (kornia style). Filters are applied
per channel (depthwise) with reflect padding, so output shape equals input shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.ops.layout import eager_only, frame_hwc, is_channels_last, is_plain_cpu_inference


def gaussian_kernel1d(size: int, sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(size,) normalised Gaussian taps centred on the middle tap. ``size`` must be odd."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2.0 * float(sigma) ** 2))
    return (k / k.sum()).to(dtype)


def gaussian_kernel2d(size: int, sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(size, size) normalised isotropic Gaussian kernel."""
    k = gaussian_kernel1d(size, sigma, device=device, dtype=torch.float64)
    return torch.outer(k, k).to(dtype)


def filter2d(x: torch.Tensor, kernel: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Depthwise 2-D correlation of each channel of ``x`` with ``kernel``.

    Args:
        x: (N,C,H,W) float.
        kernel: (kh,kw) applied to every channel, or (C,kh,kw) one per channel; odd sizes.
        padding: a ``F.pad`` mode ('reflect', 'replicate', 'constant') or 'valid' for none.
    Returns:
        (N,C,H,W) (or smaller with 'valid').
    """
    n, c, h, w = x.shape
    kernel = kernel.to(x.device, x.dtype)
    if kernel.dim() == 2:
        kernel = kernel.expand(c, *kernel.shape)
    kh, kw = kernel.shape[-2:]
    if padding != "valid":
        ph, pw = kh // 2, kw // 2
        mode = padding
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"
        x = F.pad(x, (pw, pw, ph, ph), mode=mode)
    return F.conv2d(x, kernel.unsqueeze(1), groups=c)


def gaussian_blur2d(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N,C,H,W) with reflect padding; same shape out.

    CPU inference (float32, no autograd) runs OpenCV's ``sepFilter2D`` on each frame's memory
    instead (the same values within float rounding; ~10-20x faster at 1080p, as fast as the
    classic filter anyone would run), so the unsharp-mask baseline is timed at its real speed."""
    k = gaussian_kernel1d(kernel_size, sigma, device=x.device, dtype=x.dtype)
    half = kernel_size // 2
    if half < min(x.shape[-2:]) and is_plain_cpu_inference(x):
        return _sep_filter_opencv(x, k)
    x = filter2d(x, k.view(1, -1))
    return filter2d(x, k.view(-1, 1))


@eager_only
def _sep_filter_opencv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """:func:`gaussian_blur2d`'s separable correlation with ``k`` (odd, symmetric) on a CPU float32
    (N,C,H,W): per frame on channels-last memory (up to 4 channels), else per plane. OpenCV's
    ``BORDER_REFLECT_101`` is ``F.pad``'s 'reflect'."""
    import cv2

    taps = k.numpy()  # float32, as x
    border = cv2.BORDER_REFLECT_101
    n, c = x.shape[:2]
    if is_channels_last(x) and c <= 4:  # (2-4 channels: a 1-channel tensor counts as plain contiguous)
        out = torch.empty_like(x)
        for i in range(n):
            cv2.sepFilter2D(frame_hwc(x, i), -1, taps, taps, dst=frame_hwc(out, i), borderType=border)
        return out
    xc = x.contiguous()
    out = torch.empty_like(xc)
    for i in range(n):
        for j in range(c):
            cv2.sepFilter2D(xc[i, j].numpy(), -1, taps, taps, dst=out[i, j].numpy(), borderType=border)
    return out


def sobel_kernels(*, device=None, dtype=torch.float32) -> torch.Tensor:
    """(2,3,3) Sobel kernels for d/dx and d/dy, normalised so a unit ramp gives gradient 1."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=dtype, device=device) / 8.0
    return torch.stack([gx, gx.t()])


def spatial_gradient(x: torch.Tensor) -> torch.Tensor:
    """Sobel derivatives of (N,C,H,W) -> (N,C,2,H,W) with [dx, dy] on dim 2."""
    n, c, h, w = x.shape
    k = sobel_kernels(device=x.device, dtype=x.dtype)
    xp = x.reshape(n * c, 1, h, w)
    mode = "reflect" if h > 1 and w > 1 else "replicate"
    xp = F.pad(xp, (1, 1, 1, 1), mode=mode)
    g = F.conv2d(xp, k.unsqueeze(1))
    return g.view(n, c, 2, h, w)


def sobel(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Sobel gradient magnitude of (N,C,H,W) -> (N,C,H,W), >= 0."""
    g = spatial_gradient(x)
    return torch.sqrt(g[:, :, 0] ** 2 + g[:, :, 1] ** 2 + eps)


def laplacian_kernel(*, device=None, dtype=torch.float32) -> torch.Tensor:
    """(3,3) 4-neighbour Laplacian kernel."""
    return torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=dtype, device=device)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of (N,C,H,W) -> (N,C,H,W); zero on constant and linear images."""
    return filter2d(x, laplacian_kernel(device=x.device, dtype=x.dtype))


def unsharp_detail(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """The detail layer ``x - blur(x)`` of (N,C,H,W) (Gaussian of ``sigma`` px, support 2*ceil(3*sigma)+1)."""
    size = 2 * max(1, math.ceil(3 * sigma)) + 1
    return x - gaussian_blur2d(x, size, sigma)


def add_detail(x: torch.Tensor, detail: torch.Tensor, amount: float = 1.0, threshold: float = 0.0) -> torch.Tensor:
    """``x + amount * detail`` where |detail| > threshold, clamped to [0,1] (the second half of
    :func:`unsharp_mask`, for reusing one blur across several amounts)."""
    if threshold > 0:
        detail = torch.where(detail.abs() > threshold, detail, torch.zeros_like(detail))
    return (x + amount * detail).clamp(0.0, 1.0)


def unsharp_mask(x: torch.Tensor, amount: float = 1.0, sigma: float = 1.0, threshold: float = 0.0) -> torch.Tensor:
    """Classic unsharp mask: ``x + amount * (x - blur(x))`` where |detail| > threshold, clamped to [0,1].

    Args:
        x: (N,C,H,W) float in [0,1]. sigma: Gaussian sigma in pixels. amount: gain (0 = identity).
    """
    return add_detail(x, unsharp_detail(x, sigma), amount, threshold)


class GaussianBlur2d(nn.Module):
    """Module form of :func:`gaussian_blur2d`."""

    def __init__(self, kernel_size: int, sigma: float):
        super().__init__()
        self.kernel_size, self.sigma = kernel_size, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur2d(x, self.kernel_size, self.sigma)


class Sobel(nn.Module):
    """Module form of :func:`sobel` (gradient magnitude)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sobel(x)


class Laplacian(nn.Module):
    """Module form of :func:`laplacian`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return laplacian(x)


class UnsharpMask(nn.Module):
    """Module form of :func:`unsharp_mask`."""

    def __init__(self, amount: float = 1.0, sigma: float = 1.0, threshold: float = 0.0):
        super().__init__()
        self.amount, self.sigma, self.threshold = amount, sigma, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unsharp_mask(x, self.amount, self.sigma, self.threshold)
