"""Test-time strategies that wrap any model: the architecture computes the architecture, and how a
frame is fed to it at test time (local windows, tiles) lives here, as NAFNet's ``Local`` wrappers do.

    teacher = LocalWindows(restormer_tiny(), window=192)   # what the registered 'teacher' is
    SelfEnsemble(load_model("student"), 8)                 # 'student@x8': the mean over 8 symmetries
    unwrap(teacher)                                        # the bare Restormer: weights, features

A wrapper holds the architecture as ``.model`` and owns no weights: checkpoints hold the bare
architecture's state dict (its keys have no ``model.`` prefix; load and save through
:func:`unwrap`), and training, features (``return_features``) and ONNX export use the bare model.
"""

from __future__ import annotations

import torch
from torch import nn

from kdsharp.models.common import model_cell
from kdsharp.ops.geometry import dihedral, dihedral_inverse
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


def unwrap(model: nn.Module) -> nn.Module:
    """The bare architecture inside any test-time wrappers (``model`` itself if not wrapped)."""
    while isinstance(model, TestTimeWrapper):
        model = model.model
    return model


__all__ = ["ENSEMBLE_SIZES", "MIN_WINDOW", "LocalWindows", "SelfEnsemble", "TestTimeWrapper", "unwrap"]
