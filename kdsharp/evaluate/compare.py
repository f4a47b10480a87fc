"""The comparison picture: the same zoomed crops side by side for every method.

Crops go where the picture has most detail (edges and texture of the ground truth), so that
sharpening is visible: flat sky or a plain wall shows nothing. Among detailed areas, those where
the reference method (the teacher when present) gains most over the input rank higher. When the
set says which images hold a face or text (``tags``/``boxes`` on a sample, or ``hints``), one crop
of each comes first. Crops are enlarged with nearest-neighbour zoom so that artefacts stay
visible, and every column is labelled on a header strip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from kdsharp.io.images import write_image

_BG = (32, 32, 32)
_FG = (235, 235, 235)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
PREFERRED_TAGS = ("face", "text")  # shown first when the set has them ("people-face" counts as "face")


def _abs_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over channels, float32 HxW."""
    return np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=2)


def _detail(gt: np.ndarray) -> np.ndarray:
    """Edge strength of the ground truth: Sobel gradient magnitude of its grey, float32 HxW."""
    grey = cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def _gain(images: dict, gt: np.ndarray, reference: str | None) -> np.ndarray | None:
    """Per-pixel error reduction of ``reference`` over the input, or None without one."""
    if reference is None or reference not in images or "input" not in images:
        return None
    return _abs_err(images["input"], gt) - _abs_err(images[reference], gt)


class _Windows:
    """Mean detail and gain of square windows of one image, from integral images."""

    def __init__(self, sample: dict, reference: str | None):
        self.h, self.w = sample["gt"].shape[:2]
        self.detail = cv2.integral(_detail(sample["gt"]).astype(np.float64))
        gain = _gain(sample["images"], sample["gt"], reference)
        self.gain = None if gain is None else cv2.integral(gain.astype(np.float64))

    @staticmethod
    def _mean(ii: np.ndarray, y: int, x: int, size: int) -> float:
        return float(ii[y + size, x + size] - ii[y, x + size] - ii[y + size, x] + ii[y, x]) / (size * size)

    def stats(self, y: int, x: int, size: int) -> tuple[float, float]:
        """(mean detail, mean gain) of the window at (y, x)."""
        gain = 0.0 if self.gain is None else self._mean(self.gain, y, x, size)
        return self._mean(self.detail, y, x, size), gain

    def grid(self, size: int, stride: int) -> list[tuple[int, int]]:
        """Top-left corners of the windows on a grid with ``stride``."""
        return [
            (y, x)
            for y in list(range(0, self.h - size + 1, stride)) or [0]
            for x in list(range(0, self.w - size + 1, stride)) or [0]
        ]

    def centred(self, box: Sequence[float], size: int) -> tuple[int, int]:
        """The window centred on ``box`` (x, y, w, h), moved inside the image."""
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        return (
            int(min(max(0, cy - size / 2), max(0, self.h - size))),
            int(min(max(0, cx - size / 2), max(0, self.w - size))),
        )


def _is(tag: str | None, wanted: str) -> bool:
    """True when ``tag`` is ``wanted`` or has it as a dash-separated part (``people-face``: face)."""
    return bool(tag) and (tag == wanted or wanted in str(tag).split("-"))


def collect_hints(samples: Sequence[dict], hints: Iterable[dict] | None = None) -> list[dict]:
    """``[{'image': index, 'tag', 'box'}]`` from each sample's ``tags``/``boxes`` and from ``hints``.

    A hint names its image by index or by sample name; ``box`` (x, y, w, h) is optional.
    """
    found = []
    for i, s in enumerate(samples):
        boxes = s.get("boxes") or {}
        found += [{"image": i, "tag": t, "box": boxes.get(t)} for t in s.get("tags") or ()]
    names = {s["name"]: i for i, s in enumerate(samples)}
    for h in hints or ():
        idx = names.get(h.get("image")) if isinstance(h.get("image"), str) else h.get("image")
        if isinstance(idx, int) and 0 <= idx < len(samples):
            found.append({"image": idx, "tag": h.get("tag"), "box": h.get("box")})
    return found


def pick_crops(
    samples: Sequence[dict],
    reference: str | None,
    n: int = 3,
    crop: int = 96,
    hints: Iterable[dict] | None = None,
    prefer: Sequence[str] = PREFERRED_TAGS,
) -> list[dict]:
    """Choose ``n`` crops with the most detail, from different images when there are enough.

    Args:
        samples: ``[{'name', 'gt': HxWx3 uint8 RGB, 'images': {row: HxWx3 uint8 RGB}}]``, each
            optionally with ``'tags'`` (e.g. ``{'face'}``) and ``'boxes'`` (``{tag: (x, y, w, h)}``).
        reference: the row whose gain over ``'input'`` lifts detailed windows (up to x2); None:
            detail alone. A window's score is its mean gradient magnitude over the best one's.
        hints: more ``{'image': index or name, 'tag', 'box'}`` (see :func:`collect_hints`).
        prefer: tags that get one crop each, first (in this order), when some image has them.
    Returns:
        ``[{'image': index, 'name', 'y', 'x', 'size', 'score', 'tag'}]``: tagged crops first,
        then best first.
    """
    size = max(8, min([crop] + [min(s["gt"].shape[:2]) // 2 for s in samples]))  # one size, fits twice
    windows = [_Windows(s, reference) for s in samples]
    cands: list[tuple[int, int, int, float, float]] = []  # (image, y, x, detail, gain)
    for i, w in enumerate(windows):
        for y, x in w.grid(size, max(8, size // 4)):
            d, g = w.stats(y, x, size)
            cands.append((i, y, x, d, g))
    if not cands:
        return []
    top_d = max(c[3] for c in cands) or 1.0
    top_g = max(max(c[4] for c in cands), 0.0) or 1.0

    def crop_of(i: int, y: int, x: int, d: float, g: float, tag: str | None = None) -> dict:
        score = d / top_d * (1.0 + max(g, 0.0) / top_g)
        return {
            "image": i,
            "name": samples[i]["name"],
            "y": int(y),
            "x": int(x),
            "size": int(size),
            "score": float(score),
            "tag": tag,
        }

    def overlaps(c: dict, d: dict) -> bool:
        return c["image"] == d["image"] and abs(c["y"] - d["y"]) < size and abs(c["x"] - d["x"]) < size

    chosen: list[dict] = []
    tagged = collect_hints(samples, hints)
    for tag in prefer:
        for h in (h for h in tagged if _is(h["tag"], tag) and len(chosen) < n):
            i, w = h["image"], windows[h["image"]]
            if h.get("box") is not None:
                y, x = w.centred(h["box"], size)
                d, g = w.stats(y, x, size)
                c = crop_of(i, y, x, d, g, tag=tag)
            else:
                c = max((crop_of(*k, tag=tag) for k in cands if k[0] == i), key=lambda k: k["score"])
            if not any(overlaps(c, d) for d in chosen):
                chosen.append(c)
                break
    ranked = sorted((crop_of(*k) for k in cands), key=lambda c: -c["score"])
    for distinct in (True, False):  # first one crop per image, then more from the same images
        for c in ranked:
            if len(chosen) >= n:
                break
            if distinct and any(c["image"] == d["image"] for d in chosen):
                continue
            if not any(overlaps(c, d) for d in chosen):
                chosen.append(c)
    return chosen


def _label(width: int, height: int, text: str, scale: float = 0.5) -> np.ndarray:
    """A dark strip with ``text`` centred (or left-aligned when too long), uint8 HxWx3."""
    strip = np.full((height, width, 3), _BG, np.uint8)
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
    x = max(4, (width - tw) // 2)
    cv2.putText(strip, text, (x, (height + th) // 2), _FONT, scale, _FG, 1, cv2.LINE_AA)
    return strip


def render_comparison(
    samples: Sequence[dict],
    columns: Sequence[str],
    crops: Sequence[dict],
    labels: dict[str, str] | None = None,
    zoom: int = 3,
    gap: int = 4,
) -> np.ndarray:
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
        header[:, x0 : x0 + tile] = _label(tile, 28, labels.get(c, c), 0.55)
    parts.append(header)
    for k in crops:
        s = samples[k["image"]]
        tag = f" ({k['tag']})" if k.get("tag") else ""
        parts.append(
            _label(
                width,
                22,
                f"{s['name']}{tag}  crop {k['size']}x{k['size']} at x={k['x']}, y={k['y']}  (x{zoom} nearest)",
                0.45,
            )
        )
        row = np.full((tile, width, 3), _BG, np.uint8)
        for j, c in enumerate(cols):
            img = s["gt"] if c == "gt" else s["images"][c]
            patch = img[k["y"] : k["y"] + k["size"], k["x"] : k["x"] + k["size"]]
            patch = cv2.resize(patch, (patch.shape[1] * zoom, patch.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
            x0 = gap + j * (tile + gap)
            row[: patch.shape[0], x0 : x0 + patch.shape[1]] = patch
        parts.append(row)
        parts.append(np.full((gap, width, 3), _BG, np.uint8))
    return np.concatenate(parts, axis=0)


def write_comparison(
    path: str | Path,
    samples: Sequence[dict],
    columns: Sequence[str],
    reference: str | None,
    labels: dict[str, str] | None = None,
    n_crops: int = 3,
    crop: int = 96,
    zoom: int = 3,
    hints: Iterable[dict] | None = None,
) -> list[dict]:
    """Pick crops (see :func:`pick_crops`; ``hints`` mark faces/text), render and write the
    comparison PNG atomically; returns the crops used."""
    crops = pick_crops(samples, reference, n=n_crops, crop=crop, hints=hints)
    picture = render_comparison(samples, columns, crops, labels=labels, zoom=zoom)
    write_image(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return crops


__all__ = ["PREFERRED_TAGS", "collect_hints", "pick_crops", "render_comparison", "write_comparison"]
