"""PSNR and SSIM matching scikit-image's published definitions.

* ``psnr``/``ssim`` take uint8 (or uint16) HxW or HxWxC arrays, like
  ``skimage.metrics.peak_signal_noise_ratio`` and
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255, channel_axis=2)``.
* ``psnr_torch``/``ssim_torch`` take batched (N,C,H,W) float tensors in [0,1] and return (N,)
  per-image values, for validation during training.

SSIM is Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, per channel, then
averaged; as in scikit-image the 5-pixel border (half the window) is left out of the mean.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kdsharp.ops.filters import gaussian_kernel1d

_WIN, _SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03
SSIM_MIN_SIDE = _WIN  #: px: SSIM needs images at least this wide and high

#: dB. Identical images have infinite PSNR; means over images count them as this many dB.
PSNR_CAP = 100.0


def capped(psnr_db: float) -> float:
    """``psnr_db`` limited to :data:`PSNR_CAP`, so that one identical image cannot make a mean infinite."""
    return min(float(psnr_db), PSNR_CAP)


def _data_range(a: np.ndarray, b: np.ndarray) -> float:
    """255 for uint8, 65535 for uint16, 1 for float images in [0,1]; ValueError for any other
    (e.g. floats in 0..255, which would score on the wrong scale: pass ``data_range``)."""
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(a.dtype, np.floating) and all(x.size == 0 or (x.min() >= 0 and x.max() <= 1) for x in (a, b)):
        return 1.0
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    raise ValueError(
        f"cannot tell the data range of {a.dtype} images with values in [{lo:g}, {hi:g}] (uint8: 255, uint16: "
        "65535, float: [0,1]): pass data_range (e.g. data_range=255 for 0..255 values)"
    )


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:  # uint8 (0..255) against float (0..1) would compare different scales
        raise ValueError(f"images differ in dtype: {a.dtype} vs {b.dtype} (convert both to the same type and range)")


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB between two images of the same shape and dtype (uint8 -> range 255, uint16 ->
    65535, float in [0,1] -> 1; other values need ``data_range``).

    Identical images give ``inf``.
    """
    _check_pair(a, b)
    r = _data_range(a, b) if data_range is None else float(data_range)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(r * r / mse))


def _check_ssim_size(h: int, w: int) -> None:
    if min(h, w) < _WIN:
        raise ValueError(f"SSIM needs images of at least {_WIN}x{_WIN}, got {(h, w)}")


def _ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """(N,C,H,W) float64/32 -> (N,C,H-10,W-10) SSIM map over the valid region."""
    c = x.shape[1]
    g = gaussian_kernel1d(_WIN, _SIGMA, device=x.device, dtype=x.dtype)
    kx = g.view(1, 1, 1, -1).expand(c, 1, 1, _WIN)
    ky = g.view(1, 1, -1, 1).expand(c, 1, _WIN, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    return _ssim_from(x, y, blur, data_range)


def _ssim_from(x, y, blur, data_range: float):
    """SSIM map of ``x`` and ``y`` (arrays or tensors) given the local-mean filter ``blur``."""
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return num / den


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Mean SSIM of two HxW or HxWxC images (each side at least 11 pixels).

    Computed in float64 with OpenCV's separable filter (fast); the 5-pixel border is dropped as
    in scikit-image, so the padding mode does not matter.
    """
    _check_pair(a, b)
    _check_ssim_size(a.shape[0], a.shape[1])
    r = _data_range(a, b) if data_range is None else float(data_range)
    g = gaussian_kernel1d(_WIN, _SIGMA, dtype=torch.float64).numpy()
    x, y = a.astype(np.float64), b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    pad = _WIN // 2

    def blur(t: np.ndarray) -> np.ndarray:
        out = cv2.sepFilter2D(t, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)
        return out[pad:-pad, pad:-pad]

    values = [
        _ssim_from(np.ascontiguousarray(x[:, :, ch]), np.ascontiguousarray(y[:, :, ch]), blur, r).mean()
        for ch in range(x.shape[2])
    ]
    return float(np.mean(values))


def psnr_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, quantize: bool = False) -> torch.Tensor:
    """Per-image PSNR (dB) of (N,C,H,W) float tensors in [0,1] -> (N,).

    ``quantize=True`` rounds both to 8-bit levels first, so values match :func:`psnr` on the
    saved uint8 images. Identical images give ``inf``, as :func:`psnr` (and scikit-image) does:
    a mean over images should count them as :data:`PSNR_CAP` (``.clamp(max=PSNR_CAP)``).
    """
    if quantize:
        x, y = (x.clamp(0, 1) * 255).round() / 255, (y.clamp(0, 1) * 255).round() / 255
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()  # mse 0 -> inf


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM of (N,C,H,W) float tensors in [0,1] (H, W at least 11) -> (N,)."""
    _check_ssim_size(x.shape[-2], x.shape[-1])
    m = _ssim_map(x.double(), y.double(), data_range)
    return m.mean(dim=(2, 3)).mean(dim=1).float()
