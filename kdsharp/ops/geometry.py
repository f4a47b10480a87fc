"""Flips and quarter turns (the 8 symmetries of a square), for numpy arrays and torch tensors alike.

Training augments crops with them: :class:`kdsharp.data.datasets.TrainDataset` on uint8 HxWx3
arrays (``axes=(0, 1)``), cached teacher triples (:mod:`kdsharp.train.loaders`) on (C,H,W) tensors.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Image = TypeVar("Image", np.ndarray, torch.Tensor)


def flip_rotate(x: Image, hflip: bool, vflip: bool, rot90: int, axes: tuple[int, int] = (-2, -1)) -> Image:
    """``x`` flipped left-right (``hflip``), then up-down (``vflip``), then turned ``rot90`` quarter
    turns counter-clockwise, in the (H, W) plane ``axes``; a contiguous copy where anything moved."""
    h_ax, w_ax = axes
    if isinstance(x, torch.Tensor):
        t = x.flip(w_ax) if hflip else x
        t = t.flip(h_ax) if vflip else t
        return torch.rot90(t, rot90 % 4, (h_ax, w_ax)).contiguous()
    a = np.flip(x, w_ax) if hflip else x
    a = np.flip(a, h_ax) if vflip else a
    return np.ascontiguousarray(np.rot90(a, rot90 % 4, (h_ax, w_ax)))


def dihedral(x: Image, code: int, axes: tuple[int, int] = (-2, -1)) -> Image:
    """Symmetry number ``code`` (0..7) of ``x``: bit 0 flips left-right, bit 1 up-down, then bit 2
    transposes H and W (= a further left-right flip before a quarter turn)."""
    transpose = bool(code & 4)
    return flip_rotate(x, bool(code & 1) ^ transpose, bool(code & 2), int(transpose), axes)


#: INVERSE_CODE[c]: the symmetry that undoes symmetry ``c`` of :func:`dihedral`. Every symmetry is its
#: own inverse except the two odd quarter turns (codes 5 and 6), which undo each other (tested).
INVERSE_CODE: tuple[int, ...] = (0, 1, 2, 3, 4, 6, 5, 7)


def dihedral_inverse(x: Image, code: int, axes: tuple[int, int] = (-2, -1)) -> Image:
    """Undo :func:`dihedral`: ``dihedral_inverse(dihedral(x, c), c)`` equals ``x`` for every ``c``."""
    return dihedral(x, INVERSE_CODE[code % 8], axes)


__all__ = ["INVERSE_CODE", "dihedral", "dihedral_inverse", "flip_rotate"]
