"""Data: degradations of clean frames, training/eval datasets, sources and built-in samples.

    from kdsharp.data import Degrader, sample_images
    from kdsharp.data.degrade import degrade
    lq = Degrader("mixed")(rgb_uint8, rng=0)            # or degrade(rgb_uint8, preset="mixed", seed=0)
    ds = build_train_dataset([{"type": "samples"}], "mixed", crop=128)   # torch Dataset

Degradations (:mod:`.degrade`, :mod:`.kernels`, :mod:`.codecs`, :mod:`.config`) use numpy,
OpenCV and PyAV only; the torch datasets (:mod:`.datasets`) are imported on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdsharp._lazy import lazy_dir, lazy_getattr
from kdsharp.data.config import PRESETS, list_presets, load_degrade_config
from kdsharp.data.degrade import Degrader  # (not the function `degrade`: it would hide the module)

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

_LAZY = {
    "build_train_dataset": "kdsharp.data.datasets",
    "TrainDataset": "kdsharp.data.datasets",
    "PairedFolderDataset": "kdsharp.data.datasets",
    "make_paired_set": "kdsharp.data.datasets",
    "load_source": "kdsharp.data.sources",
    "load_sources": "kdsharp.data.sources",
    "synthetic_images": "kdsharp.data.synthetic",
}

__all__ = [
    "Degrader",
    "PRESETS",
    "list_presets",
    "load_degrade_config",
    "sample_paths",
    "sample_images",
    "SAMPLES_DIR",
    *_LAZY,
]


def sample_paths() -> list[Path]:
    """Paths of the built-in sample PNGs (sorted by name)."""
    return sorted(SAMPLES_DIR.glob("*.png"))


def sample_images() -> list[np.ndarray]:
    """The built-in samples as uint8 HxWx3 RGB arrays (same order as :func:`sample_paths`)."""
    from kdsharp.io.images import read_rgb

    return [read_rgb(p) for p in sample_paths()]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
__dir__ = lazy_dir(_LAZY, globals())
