"""File I/O at the edge of the pipeline: images, videos, weights. Every write is atomic."""

from kdsharp.io.atomic import atomic_path, ensure_writable_dir
from kdsharp.io.images import (
    IMAGE_EXTS,
    from_tensor,
    is_image_file,
    list_images,
    read_image,
    read_rgb,
    to_tensor,
    write_image,
)

__all__ = [
    "atomic_path",
    "ensure_writable_dir",
    "IMAGE_EXTS",
    "is_image_file",
    "list_images",
    "read_image",
    "read_rgb",
    "write_image",
    "to_tensor",
    "from_tensor",
]
