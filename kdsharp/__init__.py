"""kdsharp: real-time sharpening of video-call footage by teacher-student distillation.

Public API::

    import kdsharp
    model = kdsharp.load_model("student")          # (N,3,H,W) RGB [0,1] -> same
    out = kdsharp.Sharpener("fast").image(bgr_uint8) # HxWx3 uint8 BGR -> same
    kdsharp.psnr(a, b), kdsharp.ssim(a, b)           # uint8 HxWx3 arrays

Heavy submodules are imported on first use so that ``kdsharp --help`` starts fast.
"""
from __future__ import annotations

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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kdsharp' has no attribute '{name}'")
