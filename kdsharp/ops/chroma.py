"""Chroma from luma: a frame's chroma as a local linear function of its luma, evaluated at a new luma.

In each (2r+1) x (2r+1) window (at half resolution by default) the chroma of a frame is
fitted as ``C = a * Y + b`` by least squares (the guided filter's local model; He, Sun and Tang,
"Guided Image Filtering", TPAMI 2013: ``a = cov(Y, C) / (var(Y) + eps)``,
``b = mean(C) - a * mean(Y)``); the mean ``a`` and ``b`` of
the windows that cover a pixel are then evaluated at a *new* luma ``Y'``:

    C' = mean(a) * Y' + mean(b)

With ``Y' = Y`` this is the guided filter of the chroma by its own luma: chroma noise and codec
blocks are smoothed where luma is flat, chroma edges kept where luma has them. With ``Y'`` a
restored luma (a luma-only model's output) the colours follow the luma change: an edge that the
model sharpened in luma is sharpened in Cb and Cr in proportion to how the colours vary with luma
there (the colour-line prior), without a network for chroma.

Three forms that give the same values (``tests/test_ops_chroma.py``):

* :func:`chroma_from_luma` -- torch, (N,1,H,W) luma and (N,C,H,W) chroma, differentiable, any device;
* :func:`chroma_from_luma_planes` -- OpenCV on 2-D numpy planes (uint8 video planes, or float),
  fit and result in horizontal strips so that the temporaries stay in the CPU's cache (1080p
  4:2:0 chroma: ~5 ms on one core, ~8 ms with the luma's area-averaging to the planes' size);
* :func:`chroma_from_luma_rgb` -- OpenCV on (H, W, 3) RGB frames, the step of the image path
  (1080p: ~25 ms on one core, ~19 ms in two parts on two threads).

The fit runs at half resolution by default and its ``a``, ``b`` are upsampled bilinearly (the
fast guided filter, He and Sun, arXiv:1505.00996): a quarter of the work, and on the corpus's
validation photos as good for ``fast`` as a full-resolution fit with twice the radius.

Beyond the borders the edge pixels are repeated (torch ``replicate`` = OpenCV ``BORDER_REPLICATE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: default regularisation: a window whose luma varies by less than about 2 levels (of 255) is
#: treated as flat (its chroma is averaged rather than fitted to luma noise); in [0,1] units squared.
CHROMA_EPS = (2.0 / 255.0) ** 2
#: default window radius, in pixels of the fitting resolution (3 x 3 windows there)
CHROMA_RADIUS = 1
#: default fitting resolution: 1/2 (as the 4:2:0 chroma of video; the fast guided filter, He and Sun 2015)
CHROMA_SCALE = 2


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,H,W): the mean over each (2r+1) x (2r+1) window, edge pixels repeated
    beyond the borders (any frame size, ONNX-traceable for all sizes at once). Radius 0: ``x``."""
    r = int(radius)
    if r <= 0:
        return x
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def _downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,ceil(H/s),ceil(W/s)): the mean of each s x s block, the bottom/right edge
    pixels repeated to fill the last blocks (always padded in an ONNX export: one graph, every size)."""
    h, w = x.shape[-2], x.shape[-1]
    ph, pw = (scale - h % scale) % scale, (scale - w % scale) % scale
    if torch.onnx.is_in_onnx_export() or ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.avg_pool2d(x, scale)


def chroma_from_luma(
    y: torch.Tensor,
    chroma: torch.Tensor,
    y_new: torch.Tensor,
    radius: int = CHROMA_RADIUS,
    eps: float = CHROMA_EPS,
    scale: int = CHROMA_SCALE,
) -> torch.Tensor:
    """Chroma fitted to luma in local windows, evaluated at a new luma (module docstring).

    Args:
        y: (N,1,H,W) luma of the frame the chroma belongs to, [0,1].
        chroma: (N,C,H,W) its chroma planes (Cb, Cr; any offset), same units as ``y``.
        y_new: (N,1,H,W) the luma to evaluate the fit at (``y`` itself: a guided filter).
        radius: window radius in pixels of the fitting resolution (0: the chroma unchanged).
        eps: regularisation of the slope, in squared units of ``y`` (:data:`CHROMA_EPS`).
        scale: fit at 1/``scale`` resolution (s x s block means) and upsample the fit's ``a``, ``b``
            bilinearly (the fast guided filter); 1: at full resolution.
    Returns:
        (N,C,H,W) the new chroma.
    """
    if int(radius) <= 0:
        return chroma
    c = chroma.shape[1]
    lo = torch.cat([y, chroma], dim=1)
    if scale > 1:
        lo = _downscale(lo, int(scale))
    yl, cl = lo[:, :1], lo[:, 1:]
    stats = box_filter(torch.cat([yl, yl * yl, cl, yl * cl], dim=1), radius)
    mean_y, mean_yy = stats[:, :1], stats[:, 1:2]
    mean_c, mean_yc = stats[:, 2 : 2 + c], stats[:, 2 + c :]
    a = (mean_yc - mean_y * mean_c) / (mean_yy - mean_y * mean_y + eps)
    b = mean_c - a * mean_y
    ab = box_filter(torch.cat([a, b], dim=1), radius)
    if scale > 1:  # exactly x scale (half-pixel centres, edges clamped), then cropped to the frame
        h, w = y_new.shape[-2:]
        ab = F.interpolate(ab, scale_factor=float(scale), mode="bilinear", align_corners=False)[..., :h, :w]
    return ab[:, :c] * y_new + ab[:, c:]


def _downscale_np(x: np.ndarray, scale: int) -> np.ndarray:
    """:func:`_downscale` of an (H, W) plane or (H, W, C) frame with OpenCV (float32 out)."""
    import cv2

    if scale <= 1:
        return x.astype(np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)  # no copy of a contiguous float32 frame: it is only read
    h, w = x.shape[:2]
    ph, pw = -h % scale, -w % scale
    if ph or pw:
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    return cv2.resize(x, (x.shape[1] // scale, x.shape[0] // scale), interpolation=cv2.INTER_AREA)


def _upsample(x: np.ndarray, scale: int) -> np.ndarray:
    """(h, w[, c]) -> (h*s, w*s[, c]): bilinear, half-pixel centres, edges clamped (``F.interpolate``'s
    ``scale_factor=s, align_corners=False``)."""
    import cv2

    return cv2.resize(x, (x.shape[1] * scale, x.shape[0] * scale), interpolation=cv2.INTER_LINEAR)


def chroma_from_luma_rgb(
    src: np.ndarray,
    out: np.ndarray,
    dst: np.ndarray,
    radius: int = CHROMA_RADIUS,
    eps: float = CHROMA_EPS,
    scale: int = CHROMA_SCALE,
    rows: int = 32,
    threads: int | None = None,
) -> np.ndarray:
    """:func:`chroma_from_luma` for RGB frames with OpenCV: ``out`` with the chroma of ``src`` fitted
    to ``src``'s luma and evaluated at ``out``'s luma (BT.601), its own luma kept.

    Args:
        src: (H, W, 3) float32 RGB [0,1], the frame whose chroma is fitted (may be ``out`` itself).
        out: (H, W, 3) float32 RGB, the model's output.
        dst: (H, W, 3) float32, where the result goes (may be ``out``).
        radius, eps, scale: as :func:`chroma_from_luma` (``eps`` in [0,1] units squared).
        rows: the full-resolution part runs in strips of this many rows, its temporaries in cache
            (1080p: ~25 ms on one core, the two colour transforms and the strips' numpy work included).
        threads: the fit and the strips run in this many parts on as many threads (None: OpenCV's
            thread count, which ``kdsharp.infer.threads.torch_threads`` sets to the model's).
    Returns:
        ``dst``.
    """
    import cv2

    from kdsharp.ops.color import _RGB2YCC, _YCC2RGB

    m = _RGB2YCC.numpy()  # (3, 3): Y, Cb, Cr from R, G, B (Cb, Cr without their 0.5 offset: it cancels)
    d = np.zeros((3, 3), np.float32)
    d[:, :2] = _YCC2RGB[:, 1:].numpy()  # the change of R, G, B per unit change of Cb, Cr (third input unused)
    h, w = out.shape[:2]
    s = max(1, int(scale))
    # area means commute with the colour transform: shrink RGB first, convert the small frame
    lo = cv2.transform(np.ascontiguousarray(_downscale_np(src, s)), m)
    y_lo, cb_lo, cr_lo = (np.ascontiguousarray(lo[..., i]) for i in range(3))
    n = int(threads if threads is not None else cv2.getNumThreads())
    (a_cb, b_cb), (a_cr, b_cr) = _fit_planes(y_lo, [cb_lo, cr_lo], radius, eps, 64, threads=n)
    ab = cv2.merge([a_cb, b_cb, a_cr, b_cr])  # (h', w', 4) at the fitting resolution
    h_lo = ab.shape[0]

    def strips(first: int, stop: int) -> None:  # rows first..stop of the result, ``rows`` at a time
        delta = np.zeros((rows, w, 3), np.float32)
        for y0 in range(first, stop, rows):
            y1 = min(stop, y0 + rows)
            if s > 1:  # the fit's rows this strip's bilinear upsampling reads, upsampled exactly x s
                l0, l1 = max(0, y0 // s - 1), min(h_lo, (y1 - 1) // s + 2)
                up = _upsample(ab[l0:l1], s)[y0 - l0 * s : y1 - l0 * s, :w]
            else:
                up = ab[y0:y1]
            ycc = cv2.transform(out[y0:y1], m)
            dl = delta[: y1 - y0]
            for i in range(2):  # the chroma change: a * Y_out + b - C_out
                np.multiply(up[..., 2 * i], ycc[..., 0], out=dl[..., i])
                dl[..., i] += up[..., 2 * i + 1]
                dl[..., i] -= ycc[..., 1 + i]
            cv2.add(out[y0:y1], cv2.transform(dl, d), dst=dst[y0:y1])

    _in_parts(strips, h, rows, n)
    return dst


def _in_parts(work: Callable[[int, int], None], h: int, rows: int, threads: int) -> None:
    """``work(first, stop)`` over rows 0..``h`` in ``threads`` parts of whole ``rows``-row strips, on
    as many threads (OpenCV and numpy release the GIL): one part when the frame has too few strips
    or one thread is given."""
    n = max(1, min(int(threads), h // (4 * rows)))
    if n == 1:
        work(0, h)
        return
    from concurrent.futures import ThreadPoolExecutor

    cuts = [min(h, round(h * i / n / rows) * rows) for i in range(n)] + [h]
    with ThreadPoolExecutor(n, thread_name_prefix="kdsharp-chroma") as pool:
        for f in [pool.submit(work, a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]:
            f.result()


def _fit_planes(
    y: np.ndarray,
    planes: Sequence[np.ndarray],
    radius: int,
    eps: float,
    rows: int,
    finish: Callable[[int, int, int, np.ndarray, np.ndarray], None] | None = None,
    threads: int = 1,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(H, W) luma and chroma planes (any dtype; converted to float32 strip by strip) -> for each
    plane, the window means of ``a`` and ``b`` (each (H, W) float32). The work runs in strips of
    ``rows`` rows so that its temporaries stay in cache; with ``finish``, each strip's means go to
    ``finish(plane_index, y0, y1, a, b)`` instead of into whole planes (and [] is returned).
    ``threads``: the strips in that many parts on as many threads (:func:`_in_parts`)."""
    import cv2

    h, w = y.shape
    r = int(radius)
    fits = [] if finish else [(np.empty((h, w), np.float32), np.empty((h, w), np.float32)) for _ in planes]
    k, m, border = (2 * r + 1, 2 * r + 1), 2 * r, cv2.BORDER_REPLICATE

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, k, borderType=border) if r > 0 else a

    step = max(int(rows), 1)

    def strips(first: int, stop: int) -> None:
        for y0 in range(first, stop, step):
            y1 = min(stop, y0 + step)
            a0, a1 = max(0, y0 - m), min(h, y1 + m)  # the strip and the rows its two box filters reach
            keep = slice(y0 - a0, y1 - a0)
            yi = y[a0:a1].astype(np.float32)
            mean_y = box(yi)
            var = box(yi * yi)
            var -= mean_y * mean_y
            var += np.float32(eps)
            for i, p in enumerate(planes):
                c = p[a0:a1].astype(np.float32)
                mean_c = box(c)
                a = box(yi * c)
                a -= mean_y * mean_c
                a /= var
                b = mean_c - a * mean_y
                if finish is not None:
                    finish(i, y0, y1, box(a)[keep], box(b)[keep])
                else:
                    fits[i][0][y0:y1] = box(a)[keep]
                    fits[i][1][y0:y1] = box(b)[keep]

    _in_parts(strips, h, step, threads)
    return fits


def chroma_from_luma_planes(
    y: np.ndarray,
    planes: Sequence[np.ndarray],
    y_new: np.ndarray,
    radius: int = CHROMA_RADIUS,
    eps: float = CHROMA_EPS * 255.0**2,
    scale: int = 1,
    rows: int = 32,
    out: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """:func:`chroma_from_luma` on 2-D numpy planes with OpenCV.

    Args:
        y: (H, W) luma of the frame the planes belong to (uint8 0-255 or float).
        planes: chroma planes, each (H, W), the dtype of the result (uint8: rounded and clamped to 0-255).
        y_new: (H, W) the luma to evaluate the fit at.
        radius: window radius in pixels of the fitting resolution (0: the planes unchanged).
        eps: regularisation in squared units of ``y`` (default: :data:`CHROMA_EPS` in 8-bit levels).
        scale: fit at 1/``scale`` resolution (default 1 here: video's 4:2:0 planes come at half
            resolution already).
        rows: strip height of the fit (its temporaries stay in cache).
        out: arrays to write the planes into (default: new ones).
    Returns:
        the new planes, in ``out`` if given.
    """
    import cv2

    results = list(out) if out is not None else [np.empty_like(p) for p in planes]
    if int(radius) <= 0:
        for p, o in zip(planes, results, strict=True):
            o[...] = p
        return results
    h, w = y_new.shape
    s = int(scale)

    def store(o: np.ndarray, rows_: slice, q: np.ndarray) -> None:
        if o.dtype == np.uint8:
            np.clip(np.rint(q, out=q), 0, 255, out=q)
        o[rows_] = q

    if s <= 1:  # at the planes' resolution (video's 4:2:0 chroma): fit and evaluate strip by strip

        def finish(i: int, y0: int, y1: int, a: np.ndarray, b: np.ndarray) -> None:
            q = a * y_new[y0:y1].astype(np.float32)
            q += b
            store(results[i], slice(y0, y1), q)

        _fit_planes(y, planes, radius, eps, rows, finish)
        return results
    lo = [_downscale_np(p, s) for p in (y, *planes)]
    yn = y_new.astype(np.float32)
    for (a, b), o in zip(_fit_planes(lo[0], lo[1:], radius, eps, rows), results, strict=True):
        a, b = (_upsample(v, s)[:h, :w] for v in (a, b))
        q = cv2.multiply(a, yn)
        q += b
        store(o, slice(None), q)
    return results


class ChromaFromLumaFilter(nn.Module):
    """Module form of :func:`chroma_from_luma`: ``(y, chroma, y_new) -> chroma'``."""

    def __init__(self, radius: int = CHROMA_RADIUS, eps: float = CHROMA_EPS, scale: int = CHROMA_SCALE):
        super().__init__()
        self.radius, self.eps, self.scale = int(radius), float(eps), int(scale)

    def forward(self, y: torch.Tensor, chroma: torch.Tensor, y_new: torch.Tensor) -> torch.Tensor:
        return chroma_from_luma(y, chroma, y_new, self.radius, self.eps, self.scale)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, eps={self.eps:.3g}, scale={self.scale}"


__all__ = [
    "CHROMA_EPS",
    "CHROMA_RADIUS",
    "CHROMA_SCALE",
    "ChromaFromLumaFilter",
    "box_filter",
    "chroma_from_luma",
    "chroma_from_luma_planes",
    "chroma_from_luma_rgb",
]
