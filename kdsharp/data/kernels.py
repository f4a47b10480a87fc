"""Blur kernels as normalised numpy arrays, applied with ``cv2.filter2D``.

Every kernel is a (k,k) float32 array, ``k`` odd, summing to 1. The Gaussian family follows
Real-ESRGAN (isotropic / anisotropic-rotated Gaussian, generalized Gaussian, plateau); camera
blurs add linear motion blur and a defocus disk. ``random_kernel`` draws one from a config dict.
Sigmas, lengths and radii are in pixels; angles in radians.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

KERNEL_KINDS = ("iso", "aniso", "generalized", "plateau", "motion", "defocus")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size % 2 != 1 or size < 1:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    r = (size - 1) / 2
    return np.meshgrid(np.arange(size) - r, np.arange(size) - r, indexing="xy")


def _normalise(k: np.ndarray) -> np.ndarray:
    s = float(k.sum())
    if s <= 0:  # degenerate (e.g. tiny radius): fall back to the identity
        k = np.zeros_like(k)
        k[k.shape[0] // 2, k.shape[1] // 2] = 1.0
        s = 1.0
    return (k / s).astype(np.float32)


def _mahalanobis2(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Squared Mahalanobis distance x^T S^-1 x on the (size,size) grid for a rotated covariance."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy  # coordinates in the rotated frame
    v = -s * xx + c * yy
    return (u / max(sigma_x, 1e-3)) ** 2 + (v / max(sigma_y, 1e-3)) ** 2


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """(size,size) Gaussian; isotropic when ``sigma_y`` is None, else rotated by ``theta``."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalise(np.exp(-0.5 * _mahalanobis2(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """exp(-0.5 * (x^T S^-1 x)^beta): beta<1 heavier tails, beta>1 flatter top (Real-ESRGAN)."""
    return _normalise(np.exp(-0.5 * np.power(_mahalanobis2(size, sigma_x, sigma_y, theta), beta)))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    """1 / (1 + (x^T S^-1 x)^beta): a flat-topped kernel with slowly decaying tails (Real-ESRGAN)."""
    return _normalise(1.0 / (1.0 + np.power(_mahalanobis2(size, sigma_x, sigma_y, theta), beta)))


def motion_kernel(size: int, length: float, angle: float) -> np.ndarray:
    """Linear motion blur: an anti-aliased line of ``length`` px through the centre at ``angle``."""
    _grid(size)  # validates size
    ss = 8  # draw supersampled, then area-downsample for sub-pixel accuracy
    canvas = np.zeros((size * ss, size * ss), np.float32)
    c = (size * ss - 1) / 2
    half = max(min(length, size) - 1, 0) / 2 * ss
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    p0 = (int(round(c - dx)), int(round(c - dy)))
    p1 = (int(round(c + dx)), int(round(c + dy)))
    cv2.line(canvas, p0, p1, 1.0, thickness=ss, lineType=cv2.LINE_AA)
    return _normalise(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))


def defocus_kernel(size: int, radius: float) -> np.ndarray:
    """Defocus (pill-box) disk of ``radius`` px, anti-aliased by supersampling."""
    _grid(size)  # validates size
    ss = 8
    t = (np.arange(size * ss) + 0.5) / ss - size / 2  # sub-pixel centres, origin at the middle tap
    xx, yy = np.meshgrid(t, t, indexing="xy")
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    return _normalise(cv2.resize(disk, (size, size), interpolation=cv2.INTER_AREA))


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve uint8 HxWx3 (or HxW) with ``kernel`` (reflect border); same shape and dtype."""
    out = cv2.filter2D(img.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(out + 0.5, 0, 255).astype(img.dtype) if img.dtype == np.uint8 else out.astype(img.dtype)


def _uniform(rng: np.random.Generator, lo_hi: float | Sequence[float]) -> float:
    """A draw from ``[lo, hi]`` (a pair), or ``lo_hi`` itself (a number)."""
    lo, hi = (lo_hi, lo_hi) if isinstance(lo_hi, (int, float, np.number)) else lo_hi
    return float(rng.uniform(lo, hi))


def random_kernel(cfg: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Draw a kernel as ``cfg`` (the ``blur`` section of a degradation config) says.

    Returns ``(kernel, params)`` where ``params`` describes what was drawn (kind, size, sigmas...).
    """
    kinds = {k: float(v) for k, v in cfg["kinds"].items() if float(v) > 0}
    names = sorted(kinds)
    p = np.array([kinds[n] for n in names])
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    lo, hi = cfg["kernel_size"]
    size = int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1
    params: dict = {"kind": kind, "size": size}
    if kind == "iso":
        params["sigma"] = _uniform(rng, cfg["sigma"])
        k = gaussian_kernel(size, params["sigma"])
    elif kind == "motion":
        params["length"] = _uniform(rng, cfg["motion_length"])
        params["angle"] = float(rng.uniform(0, math.pi))
        k = motion_kernel(size, params["length"], params["angle"])
    elif kind == "defocus":
        params["radius"] = _uniform(rng, cfg["defocus_radius"])
        k = defocus_kernel(size, params["radius"])
    else:
        sx, sy = _uniform(rng, cfg["sigma"]), _uniform(rng, cfg["sigma"])
        params.update(sigma_x=sx, sigma_y=sy, theta=float(rng.uniform(0, math.pi)))
        if kind == "aniso":
            k = gaussian_kernel(size, sx, sy, params["theta"])
        elif kind == "generalized":
            params["beta"] = _uniform(rng, cfg["beta_generalized"])
            k = generalized_gaussian_kernel(size, sx, sy, params["theta"], params["beta"])
        else:
            params["beta"] = _uniform(rng, cfg["beta_plateau"])
            k = plateau_kernel(size, sx, sy, params["theta"], params["beta"])
    return k, params
