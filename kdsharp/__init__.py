"""kdsharp: real-time sharpening of video-call footage by teacher-student distillation.

Public API::

    import kdsharp
    model = kdsharp.load_model("student")          # inference mode; (N,3,H,W) RGB [0,1] -> same, not clamped
    out = kdsharp.Sharpener("fast").image(bgr_uint8) # HxWx3 uint8 BGR -> same
    kdsharp.psnr(a, b), kdsharp.ssim(a, b)           # uint8 HxWx3 arrays

Heavy submodules are imported on first use so that ``kdsharp --help`` starts fast.
"""

from __future__ import annotations

from kdsharp._lazy import lazy_dir, lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "load_model": ("kdsharp.registry", "load_model"),
    "list_models": ("kdsharp.registry", "list_models"),
    "Sharpener": ("kdsharp.infer.sharpener", "Sharpener"),
    "psnr": ("kdsharp.metrics", "psnr"),
    "ssim": ("kdsharp.metrics", "ssim"),
    "KdsharpError": ("kdsharp.errors", "KdsharpError"),
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
__dir__ = lazy_dir(_LAZY, globals())
