"""Evaluation sets: held-out clean images degraded by presets, or paired folders.

Every set is a list of ``(name, lq, gt)`` with uint8 HxWx3 RGB arrays of one size per pair.
Preset sets are deterministic: each image's degradation is seeded by (seed, preset, name).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kdsharp.console import warn
from kdsharp.errors import InputError, KdsharpError
from kdsharp.io.images import from_tensor, list_images, read_rgb
from kdsharp.ops.metrics import SSIM_MIN_SIDE

MAX_SIDE = 720  # clean images are shrunk so the long side is at most this (keeps eval quick)


def _skimage_file(name: str) -> Path | None:
    try:
        import skimage
    except ImportError:
        return None
    hits = sorted((Path(skimage.__file__).parent / "data").glob(f"{name}.*"))
    return hits[0] if hits else None


def _unique(name: str, taken: set) -> str:
    """``name``, or ``name-2``, ``name-3``... when already taken (two files with one stem)."""
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}-{k}"
    return out


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the long side is <= ``max_side``, then crop to multiples of 16 (codec friendly)."""
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        img = cv2.resize(img, (max(16, round(w * s)), max(16, round(h * s))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[: h - h % 16, : w - w % 16])


def held_out_paths(specs: Sequence[str]) -> list[Path]:
    """Files of a held-out list (``skimage:NAME`` or paths); missing entries are left out."""
    paths = []
    for spec in specs:
        p = _skimage_file(spec.split(":", 1)[1]) if spec.startswith("skimage:") else Path(spec)
        if p is not None and p.is_file():
            paths.append(p)
    return paths


EVAL_SPLITS = ("test", "val")  # corpus splits ``kdsharp eval`` may use: report on test, choose on val


def corpus_test_paths(corpus: str | Path | None = None, split: str = "test") -> list[Path]:
    """Files of the training corpus's held-out ``test`` split (``--corpus``, ``$KDSHARP_CORPUS`` or
    ``~/.cache/kdsharp/corpus``), or of its ``val`` split (to choose weights or settings without
    looking at test). :class:`InputError` naming the build command if the corpus is missing, and if
    any listed file is missing (never evaluates on fewer images than listed)."""
    from kdsharp.data.corpus import BUILD_COMMAND, corpus_dir, corpus_records

    if split not in EVAL_SPLITS:
        raise KdsharpError(f"unknown corpus split {split!r} (choose from {', '.join(EVAL_SPLITS)})", params=["split"])
    root = corpus_dir(corpus)
    records = corpus_records(root, split)
    if not records:
        raise InputError(root, f"the corpus has no {split} split", f"rebuild it with: {BUILD_COMMAND.format(dir=root)}")
    missing = [r["file"] for r in records if not Path(r["path"]).is_file()]
    if missing:
        raise InputError(
            root / missing[0],
            f"listed in the {split} split but missing ({len(missing)} file(s))",
            f"rebuild the corpus with: {BUILD_COMMAND.format(dir=root)}",
        )
    return [Path(r["path"]) for r in records]


def load_clean_images(
    source: str | Path | None, held_out: Sequence[str] = (), max_side: int = MAX_SIDE, max_images: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """Clean images as ``[(name, HxWx3 uint8 RGB)]``: every image in ``source``, else ``held_out``.

    Each is shrunk to a long side <= ``max_side`` and cropped to multiples of 16. Unreadable
    files are skipped with a warning; no usable image at all is an error.
    """
    if source is None:
        paths = held_out_paths(held_out)
    else:
        source = Path(source)
        if not source.is_dir():
            raise InputError(
                source,
                "no such folder" if not source.exists() else "is not a folder",
                "pass a folder of clean images as source=DIR",
                params=["source"],
            )
        paths = list_images(source)
    images: list[tuple[str, np.ndarray]] = []
    for p in paths:
        if max_images and len(images) >= max_images:  # usable ones: a skipped file does not count
            break
        try:
            rgb = read_rgb(p)
        except KdsharpError as e:
            warn(f"skipped: {e}")
            continue
        if min(rgb.shape[:2]) < 32:
            warn(f"skipped: {p}: too small to evaluate (needs at least 32x32)")
            continue
        images.append((_unique(p.stem, {n for n, _ in images}), _fit(rgb, max_side)))
    if not images:
        where = source if source is not None else "the held-out images (corpus test split or HELD_OUT list)"
        raise InputError(
            where,
            "no usable clean images",
            "pass a folder of images as source=DIR, or pairs as data=DIR",
            params=["source", "data"],
        )
    return images


def build_preset_set(images: Sequence[tuple[str, np.ndarray]], preset: str, seed: int = 0) -> list[tuple]:
    """Degrade each clean image with ``preset``, deterministically: ``[(name, lq, gt)]`` uint8 RGB."""
    from kdsharp.data.degrade import Degrader

    degrader = Degrader(preset)
    out = []
    for name, gt in images:
        rng = np.random.default_rng([seed, zlib.crc32(preset.encode()), zlib.crc32(name.encode())])
        out.append((name, np.ascontiguousarray(degrader(gt, rng)), gt))
    return out


def load_paired_set(root: str | Path, max_images: int | None = None) -> list[tuple]:
    """A paired folder (``input/``, ``target/``) as ``[(name, lq, gt)]`` uint8 RGB (at most ``max_images``).

    A pair that cannot be read, or is smaller than SSIM's window, is skipped with a one-line
    warning naming the file; an :class:`InputError` if no pair is usable.
    """
    from kdsharp.data.datasets import PairedFolderDataset

    if not Path(root).is_dir():
        raise InputError(
            root,
            "no such folder" if not Path(root).exists() else "is not a folder",
            "pass data=DIR: a folder with input/ and target/ images of the same names, e.g. made by `kdsharp degrade`",
            params=["data"],
        )
    ds = PairedFolderDataset(root)
    items: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, (_, lq_path, _) in enumerate(ds.pairs):
        if max_images is not None and len(items) >= max_images:
            break
        try:
            it = ds[i]
        except KdsharpError as e:
            warn(f"skipping the pair: {e}")
            continue
        h, w = it["lq"].shape[-2:]
        if min(h, w) < SSIM_MIN_SIDE:
            side = SSIM_MIN_SIDE
            warn(f"{lq_path}: skipping the pair: {w}x{h} is smaller than the {side}x{side} px that SSIM needs")
            continue
        items.append((_unique(str(it["name"]), {n for n, _, _ in items}), from_tensor(it["lq"]), from_tensor(it["gt"])))
    if not items:
        fix = f"fix the pairs named above (each side {SSIM_MIN_SIDE} px or more)"
        raise InputError(root, "no usable image pair", fix)
    return items


__all__ = [
    "MAX_SIDE",
    "held_out_paths",
    "corpus_test_paths",
    "load_clean_images",
    "build_preset_set",
    "load_paired_set",
]
