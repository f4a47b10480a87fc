"""The comparison picture: the same zoomed crops side by side for every method.

Crops are chosen where the reference method (the teacher when present) gains most over the
input, i.e. where restoration is visible; without a model, where the ground truth has most
detail. Crops are enlarged with nearest-neighbour zoom so that artefacts stay visible, and every
column is labelled on a header strip.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from kdsharp.io.images import write_image

_BG = (32, 32, 32)
_FG = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _abs_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over channels, float32 HxW."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)


def _window_means(score: np.ndarray, crop: int, stride: int) -> list[tuple[float, int, int]]:
    """(mean score, y, x) of every crop x crop window on a grid with ``stride``."""
    h, w = score.shape
    ii = cv2.integral(score.astype(np.float64))
    out = []
    for y in list(range(0, h - crop + 1, stride)) or [0]:
        for x in list(range(0, w - crop + 1, stride)) or [0]:
            s = ii[y + crop, x + crop] - ii[y, x + crop] - ii[y + crop, x] + ii[y, x]
            out.append((float(s) / (crop * crop), y, x))
    return out


def _score_map(images: dict, gt: np.ndarray, reference: str | None) -> np.ndarray:
    """Where to look: gain of ``reference`` over the input, else ground-truth detail."""
    if reference is not None and reference in images and "input" in images:
        return _abs_err(images["input"], gt) - _abs_err(images[reference], gt)
    grey = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.abs(cv2.Laplacian(grey, cv2.CV_32F))


def pick_crops(samples: Sequence[dict], reference: str | None, n: int = 3, crop: int = 96) -> list[dict]:
    """Choose ``n`` crops, from different images when there are enough.

    Args:
        samples: ``[{'name', 'gt': HxWx3 uint8 RGB, 'images': {row: HxWx3 uint8 RGB}}]``.
        reference: the row whose gain over ``'input'`` ranks the crops; None, or no gain
            anywhere: ground-truth detail (Laplacian magnitude) ranks them.
    Returns:
        ``[{'image': index, 'name', 'y', 'x', 'size', 'score'}]`` best first.
    """
    cands = []
    size = max(8, min([crop] + [min(s["gt"].shape[:2]) // 2 for s in samples]))  # one size, fits twice
    for i, s in enumerate(samples):
        score = _score_map(s["images"], s["gt"], reference)
        for val, y, x in _window_means(score, size, max(8, size // 4)):
            cands.append((val, i, y, x, size))
    if reference is not None and cands and max(c[0] for c in cands) <= 0:
        return pick_crops(samples, None, n, crop)  # no gain anywhere (untrained model): show detail
    cands.sort(key=lambda c: -c[0])
    chosen: list[tuple] = []

    def overlaps(c, d):
        return c[1] == d[1] and abs(c[2] - d[2]) < c[4] and abs(c[3] - d[3]) < c[4]

    for distinct in (True, False):  # first one crop per image, then more from the same images
        for c in cands:
            if len(chosen) >= n:
                break
            if distinct and any(c[1] == d[1] for d in chosen):
                continue
            if not any(overlaps(c, d) for d in chosen):
                chosen.append(c)
    return [{"image": c[1], "name": samples[c[1]]["name"], "y": int(c[2]), "x": int(c[3]),
             "size": int(c[4]), "score": float(c[0])} for c in chosen]


def _label(width: int, height: int, text: str, scale: float = 0.5) -> np.ndarray:
    """A dark strip with ``text`` centred (or left-aligned when too long), uint8 HxWx3."""
    strip = np.full((height, width, 3), _BG, np.uint8)
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    x = max(4, (width - tw) // 2)
    cv2.putText(strip, text, (x, (height + th) // 2), _FONT, scale, _FG, 1, cv2.LINE_AA)
    return strip


def render_comparison(samples: Sequence[dict], columns: Sequence[str], crops: Sequence[dict],
                      labels: dict[str, str] | None = None, zoom: int = 3, gap: int = 4) -> np.ndarray:
    """Grid of zoomed crops: one row per crop, one column per method plus ground truth.

    Args:
        samples: as for :func:`pick_crops`. columns: row names in display order (missing ones
            are left out); ``'gt'`` is the ground truth. labels: column captions by name.
    Returns:
        HxWx3 uint8 RGB picture.
    """
    labels = labels or {}
    cols = [c for c in columns if c == "gt" or all(c in samples[k["image"]]["images"] for k in crops)]
    tile = max(k["size"] for k in crops) * zoom
    width = len(cols) * tile + (len(cols) + 1) * gap
    parts = [np.full((gap, width, 3), _BG, np.uint8)]
    header = np.full((28, width, 3), _BG, np.uint8)
    for j, c in enumerate(cols):
        x0 = gap + j * (tile + gap)
        header[:, x0:x0 + tile] = _label(tile, 28, labels.get(c, c), 0.55)
    parts.append(header)
    for k in crops:
        s = samples[k["image"]]
        parts.append(_label(width, 22, f"{s['name']}  crop {k['size']}x{k['size']} at x={k['x']}, y={k['y']}"
                            f"  (x{zoom} nearest)", 0.45))
        row = np.full((tile, width, 3), _BG, np.uint8)
        for j, c in enumerate(cols):
            img = s["gt"] if c == "gt" else s["images"][c]
            patch = img[k["y"]:k["y"] + k["size"], k["x"]:k["x"] + k["size"]]
            patch = cv2.resize(patch, (patch.shape[1] * zoom, patch.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
            x0 = gap + j * (tile + gap)
            row[:patch.shape[0], x0:x0 + patch.shape[1]] = patch
        parts.append(row)
        parts.append(np.full((gap, width, 3), _BG, np.uint8))
    return np.concatenate(parts, axis=0)


def write_comparison(path: str | Path, samples: Sequence[dict], columns: Sequence[str],
                     reference: str | None, labels: dict[str, str] | None = None,
                     n_crops: int = 3, crop: int = 96, zoom: int = 3) -> list[dict]:
    """Pick crops, render and write the comparison PNG atomically; returns the crops used."""
    crops = pick_crops(samples, reference, n=n_crops, crop=crop)
    picture = render_comparison(samples, columns, crops, labels=labels, zoom=zoom)
    write_image(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return crops


__all__ = ["pick_crops", "render_comparison", "write_comparison"]
