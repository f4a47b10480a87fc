"""Test-time strategies that wrap any model: the architecture computes the architecture, and how a
frame is fed to it at test time (local windows, tiles) lives here, as NAFNet's ``Local`` wrappers do.

    teacher = LocalWindows(restormer_tiny(), window=192)   # what the registered 'teacher' is
    SelfEnsemble(load_model("student"), 8)                 # 'student@x8': the mean over 8 symmetries
    ChromaFromLuma(fast_y())                               # what the registered 'fast' is
    ChromaFromLuma(resunet_lite(detail=8))                 # 'student': its chroma refitted to its luma
    unwrap(teacher)                                        # the bare Restormer: weights, features

A wrapper holds the architecture as ``.model`` and owns no weights: checkpoints hold the bare
architecture's state dict (its keys have no ``model.`` prefix; load and save through
:func:`unwrap`), and training, features (``return_features``) and ONNX export use the bare model.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from kdsharp.models.common import model_cell
from kdsharp.ops.chroma import CHROMA_EPS, CHROMA_RADIUS, CHROMA_SCALE, chroma_from_luma, chroma_from_luma_rgb
from kdsharp.ops.color import cbcr_delta_to_rgb, rgb_to_ycbcr
from kdsharp.ops.geometry import dihedral, dihedral_inverse
from kdsharp.ops.layout import eager_only, is_plain_cpu_inference
from kdsharp.ops.tiling import tiled_forward

MIN_WINDOW = 32  # px; smaller windows leave a model too little context to restore


class TestTimeWrapper(nn.Module):
    """Base of the test-time wrappers: ``model`` is the wrapped architecture (its weights)."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # wrapping changes no mode: an eval-mode model stays in eval mode


class LocalWindows(TestTimeWrapper):
    """Run an eval-mode ``model`` on inputs larger than ``window`` px in overlapping windows.

    After TLC (Chu et al., ECCV 2022): a model whose attention is computed over the whole input
    (Restormer's MDTA: a channel covariance over all pixels) and that was trained on small crops
    sees different statistics on a full frame; in ``window`` x ``window`` windows, blended over
    ``overlap`` px (default ``window // 3``; :func:`kdsharp.ops.tiling.tiled_forward`), it sees
    the statistics of its training crops. Windows start at multiples of the model's cell (its
    ``pad_multiple``, 8 for Restormer) as inference tiles do, the last one too (it ends at the
    frame's edge, up to a cell short), so each sees the frame in the same cell phase as the whole.
    Inputs that fit one window, and training mode, run whole.
    (N,3,H,W) float RGB [0,1] -> same, on the input's device.
    """

    def __init__(self, model: nn.Module, window: int, overlap: int | None = None):
        super().__init__(model)
        if int(window) < MIN_WINDOW:
            raise ValueError(f"local windows must be >= {MIN_WINDOW} px, got {window}")
        self.window = int(window)
        self.overlap = self.window // 3 if overlap is None else int(overlap)
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"the window overlap must be in [0, {self.window}) px, got {overlap}")
        self.cell = model_cell(model)  # window starts are multiples of it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,3,H,W): whole when training or when H, W <= ``window``, else windowed."""
        if self.training or max(x.shape[-2:]) <= self.window:
            return self.model(x)
        return tiled_forward(self.model, x, self.window, self.overlap, align=self.cell)

    def extra_repr(self) -> str:
        return f"window={self.window}, overlap={self.overlap}"


ENSEMBLE_SIZES = (1, 2, 4, 8)  # symmetries averaged by SelfEnsemble: identity, + left-right, + up-down, + transposes


class SelfEnsemble(TestTimeWrapper):
    """The mean of an eval-mode ``model``'s outputs on ``n`` flipped / transposed copies of the input.

    Geometric self-ensemble (Lim et al., EDSR, CVPR-W 2017; "x8" in the super-resolution
    literature): each copy is run through the model and turned back (:func:`kdsharp.ops.geometry.
    dihedral_inverse`), and the copies are averaged. It costs ``n`` forward passes; in return the
    errors the model makes differently in each orientation partly cancel. ``n``: 1 (the model
    alone), 2 (+ left-right flip), 4 (+ up-down flips) or 8 (+ the transposes). Training mode runs
    the model once. (N,3,H,W) float RGB [0,1] -> same.
    """

    def __init__(self, model: nn.Module, n: int = 8):
        super().__init__(model)
        if int(n) not in ENSEMBLE_SIZES:
            raise ValueError(f"a self-ensemble averages 1, 2, 4 or 8 symmetries, got {n}")
        self.n = int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,3,H,W): the mean over the first ``n`` symmetries (one pass when training)."""
        if self.training or self.n == 1:
            return self.model(x)
        total = self.model(x)
        for code in range(1, self.n):
            total = total + dihedral_inverse(self.model(dihedral(x, code)), code)
        return total / self.n

    def extra_repr(self) -> str:
        return f"n={self.n}"


def is_luma_only(model: nn.Module) -> bool:
    """True for a model that changes luma only (``luma=True`` and no chroma branch: ``fast``)."""
    arch = unwrap(model)
    return bool(getattr(arch, "luma", False)) and not getattr(arch, "chroma", 0)


class ChromaFromLuma(TestTimeWrapper):
    """Give a model's output the chroma that its luma implies (:mod:`kdsharp.ops.chroma`).

    The chroma of the frame it comes from -- the input for a luma-only model (``fast`` passes Cb,
    Cr through), the model's own output otherwise -- is fitted to that frame's luma in each
    (2r+1) x (2r+1) window and evaluated at the output's luma: where the model sharpened an edge
    in luma, its colours sharpen along (in proportion to how they vary with luma there), and
    chroma noise and codec blocks are smoothed where luma is flat. The output's luma is kept.
    The fit runs at 1/``scale`` resolution in windows of ``radius`` pixels there (default: half
    resolution, 3 x 3 windows, as the YUV-native video path does on 4:2:0 chroma planes); ``eps``
    in [0,1] units squared. Training mode: the model alone (weights belong to ``.model``).
    (N,3,H,W) float RGB [0,1] -> same.

    Measured on the corpus's validation photos (``lowbw``/``defocus``/``h264``, two seeds;
    ``scripts/chroma_val.py``), ΔPSNR over the input alone -> with it: ``fast`` +0.102/+0.653/+0.022
    -> +0.155/+0.774/+0.117 dB; ``student`` (fit on its output) +0.335/+1.150/+0.175 ->
    +0.353/+1.216/+0.227 dB.
    """

    def __init__(
        self, model: nn.Module, radius: int = CHROMA_RADIUS, eps: float = CHROMA_EPS, scale: int = CHROMA_SCALE
    ):
        super().__init__(model)
        if int(radius) < 0 or float(eps) <= 0 or int(scale) < 1:
            raise ValueError(
                f"chroma from luma needs radius >= 0, eps > 0 and scale >= 1, got radius={radius}, eps={eps}, "
                f"scale={scale}"
            )
        self.radius, self.eps, self.scale = int(radius), float(eps), int(scale)
        self.from_input = is_luma_only(model)  # whose chroma is fitted: the input's, passed through

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) -> (N,3,H,W): the model's output with its chroma from luma (the model alone when
        training, and inside :func:`deferred_chroma_step` for a wrapper that fits on the output)."""
        out = self.model(x)
        if self.training or self.radius == 0 or (not self.from_input and getattr(_deferred, "on", False)):
            return out
        # in float32 whatever the model ran in: local variances of a level or less vanish in fp16/bf16
        kind = out.device.type
        with torch.autocast(kind, enabled=False) if kind in ("cpu", "cuda") else contextlib.nullcontext():
            dtype, out = out.dtype, out.float()
            src = x.float() if self.from_input else out
            if is_plain_cpu_inference(out) and is_plain_cpu_inference(src):
                return _chroma_from_luma_cpu(src, out, self.radius, self.eps, self.scale).to(dtype)
            ycc_src, ycc_out = rgb_to_ycbcr(src), rgb_to_ycbcr(out)
            new = chroma_from_luma(ycc_src[:, :1], ycc_src[:, 1:], ycc_out[:, :1], self.radius, self.eps, self.scale)
            return (out + cbcr_delta_to_rgb(new - ycc_out[:, 1:])).to(dtype)

    def extra_repr(self) -> str:
        source = "input" if self.from_input else "output"
        return f"radius={self.radius}, eps={self.eps:.3g}, scale={self.scale}, fit on the {source}"


@eager_only
def _chroma_from_luma_cpu(src: torch.Tensor, out: torch.Tensor, radius: int, eps: float, scale: int) -> torch.Tensor:
    """:meth:`ChromaFromLuma.forward`'s chroma step on float32 CPU tensors with OpenCV
    (:func:`~kdsharp.ops.chroma.chroma_from_luma_rgb`), frame by frame, into a channels-last result;
    the torch ops' values within float rounding."""
    import cv2

    def hwc(t: torch.Tensor) -> np.ndarray:  # (3, H, W) -> (H, W, 3): a view of channels-last memory
        v = t.permute(1, 2, 0)
        return v.numpy() if v.is_contiguous() else cv2.merge([t[c].contiguous().numpy() for c in range(3)])

    result = torch.empty_like(out, memory_format=torch.channels_last)
    for n in range(out.shape[0]):
        o = hwc(out[n])
        s = o if src is out else hwc(src[n])
        chroma_from_luma_rgb(s, o, result[n].permute(1, 2, 0).numpy(), radius, eps, scale)
    return result


_deferred = threading.local()  # per thread: deferred_chroma_step() is active


@contextlib.contextmanager
def deferred_chroma_step() -> Iterator[None]:
    """Within, on this thread only: a :class:`ChromaFromLuma` that fits on the model's own output
    (an RGB model's: ``student``) returns that output as is, and the caller applies the step itself
    -- the video path does, on the encoder's YUV planes (:class:`kdsharp.infer.frames.RgbFrames`),
    where it costs a fifth of the RGB form. Wrappers that fit on the input (``fast``) are unaffected."""
    before = getattr(_deferred, "on", False)
    _deferred.on = True
    try:
        yield
    finally:
        _deferred.on = before


def unwrap(model: nn.Module) -> nn.Module:
    """The bare architecture inside any test-time wrappers (``model`` itself if not wrapped)."""
    while isinstance(model, TestTimeWrapper):
        model = model.model
    return model


__all__ = [
    "ENSEMBLE_SIZES",
    "MIN_WINDOW",
    "ChromaFromLuma",
    "LocalWindows",
    "SelfEnsemble",
    "TestTimeWrapper",
    "deferred_chroma_step",
    "is_luma_only",
    "unwrap",
]
