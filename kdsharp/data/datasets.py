"""Torch datasets for training and evaluation, and ``make_paired_set`` (``kdsharp degrade``).

Training items are dicts ``{'lq': (3,crop,crop), 'gt': (3,crop,crop)}`` float32 RGB in [0,1];
evaluation items (``PairedFolderDataset``) add ``'name'`` and keep the full image size.

Reproducibility: item ``i`` of :class:`TrainDataset` draws everything (source image, crop,
rescale, flips, degradation) from ``np.random.default_rng([seed, epoch, i])``; it does not depend
on the DataLoader worker that loads it, so runs are reproducible with any ``num_workers``. Call
``set_epoch(e)`` at the start of every epoch (as with ``DistributedSampler``) to get fresh
crops and degradations each epoch; with ``persistent_workers=True`` the workers keep the epoch
they were started with, so leave that off (the default) or rebuild the loader.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from kdsharp.console import progress, warn
from kdsharp.data.degrade import Degrader
from kdsharp.data.sources import LoadedSource, find_pairs, iter_video_frames, load_sources, warn_small_images
from kdsharp.errors import InputError, KdsharpError, OutputError
from kdsharp.io.atomic import ensure_writable_dir
from kdsharp.io.formats import VIDEO_INPUT_EXTS, is_video_path, parse_size
from kdsharp.io.images import IMAGE_EXTS, list_images, read_rgb, write_image
from kdsharp.io.inputs import NOT_REGULAR, warn_skipped
from kdsharp.ops.geometry import flip_rotate


def rgb_to_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB -> (3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


def fit_min_side(img: np.ndarray, crop: int) -> np.ndarray:
    """Make both sides >= ``crop``: reflect-pad if at least half as big, else upscale (bicubic)."""
    h, w = img.shape[:2]
    if min(h, w) >= crop:
        return img
    if min(h, w) * 2 < crop:
        s = crop / min(h, w)
        img = cv2.resize(img, (max(crop, round(w * s)), max(crop, round(h * s))), interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    ph, pw = max(0, crop - h), max(0, crop - w)
    return np.pad(img, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")


def _augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random horizontal/vertical flip and 90-degree rotation for every array."""
    hflip, vflip, rot = rng.random() < 0.5, rng.random() < 0.5, int(rng.integers(0, 4))
    return [flip_rotate(a, hflip, vflip, rot, axes=(0, 1)) for a in arrays]


class TrainDataset(Dataset):
    """Random crops of clean images degraded on the fly (and of ready pairs, used as-is).

    Args:
        sources: decoded sources (:func:`kdsharp.data.sources.load_sources`).
        degradation: preset name, YAML path, config dict or a :class:`Degrader`.
        crop: square crop size in px; smaller images are reflect-padded or upscaled.
        seed: base seed (see the module docstring for how items are seeded).
        scale_aug: randomly downscale clean images (0.5-1x) before cropping, for scale variety.
        length: samples per epoch; items are then drawn at random weighted by ``repeat``. Default:
            every image once per epoch, ``repeat`` times (rounded, at least once).
        setting: the config option that set ``crop``, named in the warning about smaller images.
    """

    def __init__(
        self,
        sources: list[LoadedSource],
        degradation="mixed",
        crop: int = 128,
        seed: int = 0,
        scale_aug: bool = True,
        length: int | None = None,
        setting: str = "crop",
    ):
        if crop < 8:
            raise ValueError(f"crop must be >= 8, got {crop}")
        warn_small_images(sources, crop, setting)
        self.degrader = degradation if isinstance(degradation, Degrader) else Degrader(degradation)
        self.crop, self.seed, self.scale_aug, self.epoch = int(crop), int(seed), bool(scale_aug), 0
        self.items: list[tuple[np.ndarray, np.ndarray | None]] = []  # (gt, lq or None)
        weights, order = [], []
        for src in sources:
            for gt in src.images:
                self.items.append((fit_min_side(gt, crop), None))
                weights.append(src.repeat)
            for lq, gt in src.pairs:
                self.items.append((fit_min_side(gt, crop), fit_min_side(lq, crop)))
                weights.append(src.repeat)
        if not self.items:
            raise KdsharpError("the training sources hold no image: add a source with images")
        for idx, w in enumerate(weights):
            order += [idx] * max(1, int(round(w)))
        self._order = np.array(order)
        self._p = np.array(weights, np.float64) / float(np.sum(weights))
        self._random = bool(length)
        self.length = int(length) if length else len(order)

    def set_epoch(self, epoch: int) -> None:
        """Use the crops/degradations of epoch ``epoch`` (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _crop_region(self, h: int, w: int, rng: np.random.Generator, allow_scale: bool) -> tuple[int, int, int]:
        size = self.crop
        if allow_scale and self.scale_aug:
            s_min = max(0.5, self.crop / min(h, w))
            size = int(round(self.crop / rng.uniform(s_min, 1.0))) if s_min < 1 else self.crop
            size = min(size, h, w)
        return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1)), size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        idx = int(rng.choice(len(self.items), p=self._p)) if self._random else int(self._order[index])
        gt_full, lq_full = self.items[idx]
        h, w = gt_full.shape[:2]
        y, x, size = self._crop_region(h, w, rng, allow_scale=lq_full is None)
        gt = gt_full[y : y + size, x : x + size]
        if size != self.crop:
            gt = cv2.resize(gt, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
        if lq_full is None:
            (gt,) = _augment([gt], rng)
            lq = self.degrader(gt, rng)
        else:
            lq, gt = _augment([lq_full[y : y + size, x : x + size], gt], rng)
        return {"lq": rgb_to_chw(lq), "gt": rgb_to_chw(gt)}


def build_train_dataset(
    sources: list[dict],
    degradation="mixed",
    crop: int = 128,
    seed: int = 0,
    scale_aug: bool = True,
    length: int | None = None,
    setting: str = "crop",
) -> TrainDataset:
    """Load ``sources`` (list of source dicts, see :mod:`kdsharp.data.sources`) into a :class:`TrainDataset`.

    Decoded images are kept in memory (decoded once, here, before DataLoader workers fork).
    """
    return TrainDataset(load_sources(sources), degradation, crop, seed, scale_aug, length, setting)


class PairedFolderDataset(Dataset):
    """Full-size (lq, gt) pairs from ``input/``+``target/`` (or ``blur/``+``sharp/``, ``lq/``+``gt/``).

    Items: ``{'lq': (3,H,W), 'gt': (3,H,W)}`` float32 RGB in [0,1] and ``'name'`` (relative path
    without extension). Files are read on access; a bad file raises :class:`InputError` naming it.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.pairs = find_pairs(self.root)
        if not self.pairs:
            raise InputError(
                self.root,
                "no image pairs found",
                "use input/ and target/ subfolders with files of the same names (make one with `kdsharp degrade`)",
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        name, lq_path, gt_path = self.pairs[index]
        lq, gt = read_rgb(lq_path), read_rgb(gt_path)
        if lq.shape != gt.shape:
            raise InputError(
                lq_path,
                f"is {lq.shape[1]}x{lq.shape[0]} but {gt_path} is {gt.shape[1]}x{gt.shape[0]}",
                "input and target must have the same size",
            )
        return {"lq": rgb_to_chw(lq), "gt": rgb_to_chw(gt), "name": name}


# ----------------------------------------------------------------------------- make_paired_set
@dataclass
class PairedSetResult:
    """What :func:`make_paired_set` wrote."""

    out: Path
    written: int
    skipped: int

    @property
    def input_dir(self) -> Path:
        return self.out / "input"

    @property
    def target_dir(self) -> Path:
        return self.out / "target"


def fit_size(img: np.ndarray, size_wh: tuple[int, int] | None) -> np.ndarray:
    """Resize to cover (w, h) keeping the aspect ratio, then centre-crop to exactly (w, h)."""
    if size_wh is None:
        return img
    (w, h), (ih, iw) = size_wh, img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    src_r, out_r = src.resolve(), out.resolve()
    if src.is_dir() and (out_r == src_r or src_r in out_r.parents):
        raise OutputError(out, "is inside the source folder", "write the pairs outside the source folder")
    for sub in ("input", "target"):  # same-named pairs would be written over the source images
        d = (out / sub).resolve()
        if src_r == d or d in src_r.parents:
            raise OutputError(out, f"its {sub}/ folder holds the source {src}", "write the pairs to another folder")
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder", "choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            out,
            "folder is not empty",
            "choose an empty or new folder, or pass overwrite=True to replace same-named files",
            params=["overwrite"],
        )


def _write_pair(out: Path, name: str, lq: np.ndarray, gt: np.ndarray) -> None:
    write_image(out / "target" / f"{name}.png", cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))
    write_image(out / "input" / f"{name}.png", cv2.cvtColor(lq, cv2.COLOR_RGB2BGR))


def make_paired_set(
    src: str | Path,
    out: str | Path,
    preset="mixed",
    seed: int = 0,
    max_images: int | None = None,
    size=None,
    overwrite: bool = False,
    every: int = 1,
    clip_len: int = 8,
) -> PairedSetResult:
    """Write ``OUT/input/*.png`` (degraded) and ``OUT/target/*.png`` (clean) from clean images.

    Args:
        src: a folder of clean images (recursive), one image, or a video file. Video frames
            (every ``every``-th) are degraded in clips of ``clip_len`` so codec artefacts are temporal;
            ``every`` > 1 with images is refused (it would be ignored).
        out: output folder; must be empty or new unless ``overwrite`` (same names replaced only).
        preset: degradation preset name, YAML path or dict; seed: item ``i`` uses ``[seed, i]``.
        max_images: stop after this many pairs; size: ``"WxH"``/(w, h) to cover-resize every image.
    Bad images are skipped with one warning each. Returns a :class:`PairedSetResult`.
    """
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not src.exists():
        raise InputError(src, "no such file or folder", "pass a folder of clean images or a video file")
    if not (src.is_file() or src.is_dir()):
        raise InputError(src, NOT_REGULAR, "pass a folder of clean images or a video file")
    size_wh = None if size is None or size == "" else parse_size(size)
    degrader = preset if isinstance(preset, Degrader) else Degrader(preset)
    if max_images is not None and max_images < 1:
        raise KdsharpError(f"max_images={max_images}: must be at least 1", params=["max_images"])
    if every < 1:
        raise KdsharpError(f"every={every}: must be at least 1", params=["every"])
    if not isinstance(seed, int) or seed < 0:
        raise KdsharpError(f"seed={seed}: must be an integer >= 0", params=["seed"])
    is_video = src.is_file() and is_video_path(src)
    if src.is_file() and not is_video and src.suffix.lower() not in IMAGE_EXTS:
        raise InputError(src, "is neither an image nor a video", f"use {', '.join(IMAGE_EXTS + VIDEO_INPUT_EXTS)}")
    if every > 1 and not is_video:  # was ignored: every image of the folder was used
        raise InputError(
            src,
            f"every={every} keeps every N-th frame of a video; this is {'a folder' if src.is_dir() else 'an image'}",
            f"drop every={every}, or pass max_images=N to use fewer images",
            params=["every", "max_images"],
        )
    _check_out(src, out, overwrite)
    created = [d for d in (out, out / "input", out / "target") if not d.exists()]
    ensure_writable_dir(out / "input")
    ensure_writable_dir(out / "target")
    written = skipped = 0
    try:
        with progress("images") as bar:
            if is_video:
                task = bar.add_task(f"degrade {src.name}", total=max_images)
                clip: list[np.ndarray] = []

                def flush() -> None:
                    nonlocal written
                    lqs = degrader.clip(clip, np.random.default_rng([seed, written]))
                    for lq, gt in zip(lqs, clip, strict=True):
                        _write_pair(out, f"frame_{written:06d}", lq, gt)
                        written += 1
                        bar.advance(task)
                    clip.clear()

                for frame in iter_video_frames(src, every, max_images):
                    clip.append(fit_size(frame, size_wh))
                    if len(clip) >= max(1, clip_len):
                        flush()
                if clip:
                    flush()
            else:
                others: list[Path] = []
                paths = [src] if src.is_file() else list_images(src, skipped=others)
                if not paths:
                    raise InputError(src, "no image in this folder", f"add {', '.join(IMAGE_EXTS)} files")
                warn_skipped(src, others, "only images are degraded (pass a video on its own)")
                task = bar.add_task(f"degrade {src.name}", total=min(len(paths), max_images or len(paths)))
                used: set[str] = set()
                for i, path in enumerate(paths):
                    if max_images and written >= max_images:
                        break
                    try:
                        gt = fit_size(read_rgb(path), size_wh)
                    except KdsharpError as e:
                        warn(f"skipping {e}")
                        skipped += 1
                        continue
                    name = path.name if src.is_file() else path.relative_to(src).as_posix()
                    name = name.rsplit(".", 1)[0].replace("/", "__")
                    if name in used:  # a.png and a.jpg side by side
                        name = f"{name}_{path.suffix.lstrip('.').lower()}"
                    used.add(name)
                    _write_pair(out, name, degrader(gt, np.random.default_rng([seed, i])), gt)
                    written += 1
                    bar.advance(task)
        if not written:
            raise InputError(src, "no usable image", "fix or replace the files listed above")
    finally:  # a run that wrote nothing leaves no empty folders (they would make OUT "not empty")
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return PairedSetResult(out=out, written=written, skipped=skipped)
