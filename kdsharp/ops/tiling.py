"""Overlapping tiles blended with smooth weights: run a function on an image tile by tile.

Each tile's weight is 1 in its middle and falls off over the ``overlap`` on every side that has a
neighbour: zero for the first ``overlap // 4`` pixels (where the tile's own border effects live),
then a raised cosine. Neighbouring ramps sum to one, so for a model whose receptive field radius
is below ``overlap // 4`` the tiled result equals the untiled one (up to float rounding).

Used by inference (tiled frames, the out-of-memory fallback) and by the test-time wrapper
:class:`kdsharp.models.wrappers.LocalWindows` (the teacher's local windows).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with at least ``overlap`` shared.

    With ``align`` > 1 every start is a multiple of it (the last tile then ends at ``size``, up to
    ``align`` - 1 px shorter): a model that works on ``align``-px cells (pixel-unshuffle, a U-Net's
    downsamplings: its ``pad_multiple``) sees each tile in the same cell phase as the whole image,
    so tiles agree with the whole-image output instead of differing everywhere. A tile too short
    for that (``tile - overlap < align``) is not aligned: aligned starts could not keep the overlap.
    """
    if size <= tile:
        return [0]
    align = max(1, int(align))
    if tile - overlap < align:  # e.g. 16 px tiles of a 16 px-cell model: aligned tiles would just touch
        align = 1
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, size - tile, stride))
    return starts + [-(-(size - tile) // align) * align]


def edge_profile(
    length: int, overlap: int, lead: bool, trail: bool, device: torch.device | str | None = None
) -> torch.Tensor:
    """(length,) float32 blending weights on ``device``: 1 inside, zero margin + raised-cosine
    ramp on the sides that have a neighbour (``lead``: start, ``trail``: end)."""
    w = torch.ones(length, device=device)
    margin = overlap // 4
    ramp_len = overlap - 2 * margin
    if ramp_len <= 0:
        return w
    i = torch.arange(ramp_len, dtype=torch.float32, device=device)
    ramp = 0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / ramp_len)
    prof = torch.cat([torch.zeros(margin, device=device), ramp])[:length]
    if lead:
        w[: prof.numel()] = torch.minimum(w[: prof.numel()], prof)
    if trail:
        w[length - prof.numel() :] = torch.minimum(w[length - prof.numel() :], prof.flip(0))
    return w


def tiled_forward(fn: Fn, x: torch.Tensor, tile: int, overlap: int = 32, align: int = 1) -> torch.Tensor:
    """Apply ``fn`` ((N,3,h,w) -> (N,C,h,w)) to ``x`` (N,3,H,W) tile by tile; returns (N,C,H,W) float32.

    Tiles are ``tile`` x ``tile`` pixels (smaller for small images) overlapping by ``overlap``,
    starting at multiples of ``align`` (:func:`tile_starts`; pass the model's ``pad_multiple``).
    The blend accumulates on the device ``fn`` returns its tiles on (a GPU model's tiles stay on
    the GPU: no copy or sync per tile), and the result is returned on ``x``'s device.
    """
    if tile <= overlap:
        raise ValueError(
            f"tile size {tile} px must be larger than the tile overlap {overlap} px "
            "(use larger tiles or a smaller overlap)"
        )
    n, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    for y0 in tile_starts(h, th, overlap, align):
        ty = min(th, h - y0)
        for x0 in tile_starts(w, tw, overlap, align):
            tx = min(tw, w - x0)
            y = fn(x[:, :, y0 : y0 + ty, x0 : x0 + tx]).float()
            if out is None or weight is None:
                out = torch.zeros(n, y.shape[1], h, w, device=y.device)
                weight = torch.zeros(1, 1, h, w, device=y.device)
            wy = edge_profile(ty, overlap, lead=y0 > 0, trail=y0 + ty < h, device=y.device)
            wx = edge_profile(tx, overlap, lead=x0 > 0, trail=x0 + tx < w, device=y.device)
            wt = wy[:, None] * wx[None, :]
            out[:, :, y0 : y0 + ty, x0 : x0 + tx] += y * wt
            weight[:, :, y0 : y0 + ty, x0 : x0 + tx] += wt
    assert out is not None and weight is not None  # tile_starts always yields a tile
    return (out / weight.clamp_min(1e-8)).to(x.device)
