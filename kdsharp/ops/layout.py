"""Memory layout of (N,C,H,W) tensors, and when a tensor may leave torch for OpenCV."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor stored channels-last (and not also plain contiguous, as 1-channel ones are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def frame_hwc(x: torch.Tensor, n: int):
    """Frame ``n`` of a channels-last CPU tensor (N,C,H,W) as a numpy (H,W,C) view of its memory
    (no copy: writing to it writes to ``x``), the layout OpenCV takes."""
    return x[n].permute(1, 2, 0).numpy()


def is_plain_cpu_inference(x: torch.Tensor, in_compile: bool = False) -> bool:
    """True when ``x`` is a float32 CPU tensor in eager inference (autograd off; not traced, exported,
    compiled, or seen by a dispatch mode such as the FLOP counter): then an op may run on its memory
    with OpenCV/numpy, where that is faster than torch, and give the same values. ``in_compile``:
    also while ``torch.compile`` traces (for a ``torch.compiler.disable``-d op that runs eagerly
    between two graphs, where the compiled torch ops would be slower still)."""
    if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    if torch.compiler.is_compiling() and not in_compile:
        return False
    return _get_current_dispatch_mode() is None


_Fn = TypeVar("_Fn", bound=Callable)


def eager_only(fn: _Fn) -> _Fn:
    """``torch.compiler.disable(fn)`` (``torch.compile`` runs ``fn`` as it is, between two graphs)
    without importing ``torch._dynamo`` (~1 s) when this module is imported: eager calls go
    straight to ``fn``; under ``torch.compile`` the call goes through ``torch._disable_dynamo``,
    torch's lazy form of the same decorator."""
    disabled = torch._disable_dynamo(fn)  # imports torch._dynamo on its first call, i.e. when compiling

    @functools.wraps(fn)
    def eager(*args, **kwargs):
        if torch.compiler.is_compiling():
            return disabled(*args, **kwargs)
        return fn(*args, **kwargs)

    return eager  # type: ignore[return-value]
