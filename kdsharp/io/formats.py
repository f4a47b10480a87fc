"""What kdsharp accepts at its edges, defined once: video file extensions and ``WIDTHxHEIGHT`` sizes.

(Image extensions live with the image reader: :data:`kdsharp.io.images.IMAGE_EXTS`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kdsharp.errors import KdsharpError

#: Containers kdsharp reads AND writes (sharpened videos keep their container).
VIDEO_EXTS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
#: Containers kdsharp reads frames from (training/evaluation sources): PyAV decodes these too.
VIDEO_INPUT_EXTS: tuple[str, ...] = VIDEO_EXTS + (".ivf", ".y4m", ".flv", ".ts", ".mpg", ".mpeg")


def is_video_path(path: str | Path, writable: bool = False) -> bool:
    """True if ``path`` has a video extension kdsharp reads (``writable``: reads and writes)."""
    return Path(path).suffix.lower() in (VIDEO_EXTS if writable else VIDEO_INPUT_EXTS)


def parse_size(size: str | Sequence[int], min_side: int = 8, max_side: int = 16384) -> tuple[int, int]:
    """``'1920x1080'`` (or ``'1920*1080'``, or a ``(w, h)`` pair) -> ``(1920, 1080)`` (width, height) px.

    Raises:
        KdsharpError: not two whole numbers, or a side outside ``min_side..max_side`` px.
    """
    try:
        w, h = size.lower().replace("*", "x").split("x") if isinstance(size, str) else size
        w, h = int(w), int(h)
    except (ValueError, TypeError, AttributeError):
        raise KdsharpError(f"size={size!r}: expected WIDTHxHEIGHT in pixels, e.g. 1920x1080", params=["size"]) from None
    if not (min_side <= w <= max_side and min_side <= h <= max_side):
        raise KdsharpError(f"size={w}x{h} is out of range: use {min_side}..{max_side} pixels per side", params=["size"])
    return w, h


__all__ = ["VIDEO_EXTS", "VIDEO_INPUT_EXTS", "is_video_path", "parse_size"]
