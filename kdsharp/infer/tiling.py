"""Tiled inference with an out-of-memory fallback (the tiling itself: :mod:`kdsharp.ops.tiling`)."""

from __future__ import annotations

import torch

from kdsharp.console import warn
from kdsharp.errors import KdsharpError
from kdsharp.infer.backends import is_out_of_memory
from kdsharp.ops.tiling import Fn, edge_profile, tile_starts, tiled_forward

__all__ = ["Fn", "edge_profile", "tile_starts", "tiled_forward", "forward_any_size"]


def forward_any_size(
    fn: Fn, x: torch.Tensor, tile: int | None = None, overlap: int = 32, min_tile: int = 32, align: int = 1
) -> tuple[torch.Tensor, int | None]:
    """``fn(x)`` whole (``tile`` None) or tiled; on out-of-memory retry with tiles, halving each time.

    Returns ``(output, tile)`` where ``tile`` is the tile size that worked (None: whole image),
    so callers can keep using it for the next frames. Tiles start at multiples of ``align``
    (:func:`~kdsharp.ops.tiling.tile_starts`).
    """
    h, w = x.shape[-2:]
    while True:
        try:
            if tile is None or (tile >= h and tile >= w):
                return fn(x), tile
            return tiled_forward(fn, x, tile, overlap, align), tile
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            smaller = (max(h, w) if tile is None else min(tile, max(h, w))) // 2
            smaller -= smaller % 8
            if smaller < max(min_tile, 2 * overlap):
                raise KdsharpError(
                    f"out of memory even with {tile or max(h, w)} px tiles (use device=cpu, or a smaller batch, "
                    f"tile overlap or model)",
                    params=["device"],
                ) from e
            warn(f"out of memory on a {w}x{h} input; retrying in {smaller} px tiles")
            tile = smaller
