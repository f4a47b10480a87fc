"""Blind comparison: the same crop processed two ways, shown in random order, for a vote.

    pair = sample_pair(METHODS, store.pair_counts(), rng)        # the least-voted pair, random order
    cmp = make_comparison(clean_rgb, "coffee.png", pair, "lowbw", seed, models)
    store.add(cmp.record("A", session="..."))                    # A looked better

A comparison starts from a clean image (a built-in sample or the visitor's upload): a region
with detail is cut out, degraded with a call-like preset, and processed by the two methods of the
pair: ``input`` (nothing), ``unsharp`` (the unsharp mask tuned on this crop against its clean
original, the most favourable setting it could have, as in ``kdsharp eval``) or a model.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from kdsharp.app.processing import Models
from kdsharp.app.store import VoteRecord
from kdsharp.errors import InputError, KdsharpError

METHODS = ("input", "unsharp", "fast", "student", "teacher")
PRESETS = ("lowbw", "defocus", "h264")
CROP = 128  # px of the compared crop
MARGIN = 16  # px of context around it that the methods see (cut off afterwards)
ZOOM = 3  # the crops are shown enlarged, pixel for pixel


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """``methods`` if they are at least two of :data:`METHODS`, without repeats."""
    methods = tuple(dict.fromkeys(m.strip() for m in methods if m.strip()))
    unknown = [m for m in methods if m not in METHODS]
    if unknown or len(methods) < 2:
        raise KdsharpError(
            f"blind comparison methods: need two or more of {', '.join(METHODS)}, got {', '.join(methods) or 'none'}"
        )
    return methods


def sample_pair(methods: Sequence[str], counts: Counter, rng: np.random.Generator) -> tuple[str, str]:
    """A pair of different methods, the one with the fewest votes so far (ties at random), in random order."""
    pairs = [frozenset(p) for p in itertools.combinations(check_methods(methods), 2)]
    least = min(counts.get(p, 0) for p in pairs)
    candidates = [p for p in pairs if counts.get(p, 0) == least]
    a, b = sorted(candidates[int(rng.integers(len(candidates)))])
    return (a, b) if rng.random() < 0.5 else (b, a)


def pick_region(rgb: np.ndarray, size: int, rng: np.random.Generator, tries: int = 12) -> tuple[int, int]:
    """``(x, y)`` of a ``size`` px square with detail: the most textured of ``tries`` random positions."""
    h, w = rgb.shape[:2]
    if h < size or w < size:
        raise InputError("image", f"is {w}x{h}, smaller than the {size} px the comparison needs", "use a larger image")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    best, best_score = (0, 0), -1.0
    for _ in range(tries):
        x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
        score = float(lap[y : y + size, x : x + size].mean())
        if score > best_score:
            best, best_score = (x, y), score
    return best


def zoom(rgb: np.ndarray, factor: int = ZOOM) -> np.ndarray:
    """Enlarge pixel for pixel (nearest neighbour), so that the browser does not smooth the detail."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 RGB -> PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise KdsharpError("could not encode a PNG")
    return buf.tobytes()


def tuned_unsharp(lq: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, dict]:
    """The unsharp mask with the best PSNR against ``clean`` (grid of :func:`kdsharp.evaluate.tune_unsharp`)."""
    from kdsharp.evaluate.baselines import tune_unsharp, unsharp_baseline
    from kdsharp.io.images import from_tensor, to_tensor

    x, gt = to_tensor(lq), to_tensor(clean)
    params = tune_unsharp([x], [gt])
    return from_tensor(unsharp_baseline(params)(x)), params


def apply_method(method: str, lq: np.ndarray, clean: np.ndarray, models: Models) -> np.ndarray:
    """``lq`` (uint8 RGB) processed by ``method`` (one of :data:`METHODS`)."""
    if method == "input":
        return lq.copy()
    if method == "unsharp":
        return tuned_unsharp(lq, clean)[0]
    if method not in METHODS:
        raise KdsharpError(f"unknown method '{method}' (use one of {', '.join(METHODS)})")
    out = models.get(method).image(cv2.cvtColor(lq, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


@dataclass
class Comparison:
    """One blind pair: ``a`` is shown as A, ``b`` as B (the visitor sees neither name until voting)."""

    a: str
    b: str
    image_a: np.ndarray  # uint8 RGB crops, CROP x CROP
    image_b: np.ndarray
    lq: np.ndarray
    clean: np.ndarray
    source: str
    preset: str
    seed: int
    box: tuple[int, int, int, int]
    shown_at: float = field(default_factory=time.time)

    def record(self, choice: str, session: str | None = None, now: float | None = None) -> VoteRecord:
        """The vote for the store: the pair, the choice, the crop (and its clean original), the time taken."""
        seconds = (time.time() if now is None else now) - self.shown_at
        return VoteRecord(
            self.a,
            self.b,
            choice,
            image_png=png_bytes(self.lq),
            reference_png=png_bytes(self.clean),
            source=self.source,
            preset=self.preset,
            seed=self.seed,
            box=self.box,
            session=session,
            seconds=round(seconds, 2),
        )

    def reveal(self) -> str:
        return f"A was **{self.a}**, B was **{self.b}**"


def make_comparison(
    clean_rgb: np.ndarray,
    source: str,
    pair: tuple[str, str],
    preset: str,
    seed: int,
    models: Models,
    crop: int = CROP,
    margin: int = MARGIN,
) -> Comparison:
    """Cut a detailed ``crop`` px region (plus ``margin``) out of ``clean_rgb``, degrade it with
    ``preset`` and process it by both methods of ``pair``; the margin is cut off afterwards."""
    from kdsharp.app.processing import degrade_rgb

    rng = np.random.default_rng(seed)
    h, w = clean_rgb.shape[:2]
    size = min(crop + 2 * margin, h, w)
    if size < crop:
        raise InputError(source, f"is {w}x{h}, smaller than the {crop} px the comparison needs", "use a larger image")
    x, y = pick_region(clean_rgb, size, rng)
    region = np.ascontiguousarray(clean_rgb[y : y + size, x : x + size])
    lq_region = degrade_rgb(region, preset, seed)
    m = (size - crop) // 2
    inner = (slice(m, m + crop), slice(m, m + crop))
    outs = [apply_method(method, lq_region, region, models)[inner] for method in pair]
    return Comparison(
        pair[0],
        pair[1],
        np.ascontiguousarray(outs[0]),
        np.ascontiguousarray(outs[1]),
        np.ascontiguousarray(lq_region[inner]),
        np.ascontiguousarray(region[inner]),
        source,
        preset,
        int(seed),
        (x + m, y + m, crop, crop),
    )


__all__ = [
    "METHODS",
    "PRESETS",
    "CROP",
    "ZOOM",
    "Comparison",
    "check_methods",
    "sample_pair",
    "pick_region",
    "zoom",
    "png_bytes",
    "tuned_unsharp",
    "apply_method",
    "make_comparison",
]
