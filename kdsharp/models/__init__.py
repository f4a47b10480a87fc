"""Architectures. Importing this package registers every named model (see ``_registry``).

Every model maps (N,3,H,W) float32 RGB in [0,1] to the same shape (any H, W: padded to the
model's ``pad_multiple`` inside and cropped back; no clamping -- callers clamp) and supports
``forward(x, return_features=True) -> (out, feats)``, ``feats`` an ordered dict of
(N,C,ceil(H/k),ceil(W/k)) maps named by scale ``'s1'`` (full), ``'s2'``, ``'s4'``, ``'s8'``
(``'s16'``, ``'s32'`` for deeper bottlenecks). Luma models (``luma=True``: ``fast*``,
``resunet_luma*``) also have ``forward_cells``: (N,s*s,h,w) space-to-depth Y -> its residual,
what the YUV-native video path runs on the decoder's Y plane.
``model.feature_channels`` gives C per name and ``model.arch_kwargs`` rebuilds the model.

=================  ==============  ======================================================
model              feature side    scales -> channels
=================  ==============  ======================================================
restormer*         decoder         s1: 2*dim (after refinement), s2: 2*dim, s4: 4*dim,
                                   s8: 8*dim (latent)  -- tiny: 48/48/96/192
resunet_teacher    decoder         s1: 32, s2: 64, s4: 128, s8: 256 (bottleneck)
resunet_lite       decoder         s4: 16, s8: 32, s16: 64 (bottleneck)  (= student)
resunet_luma       decoder         s4: 16, s8: 32, s16: 64 (bottleneck); resunet_luma4 adds s32: 128
unet               decoder         s4: 16, s8: 32, s16: 64 (bottleneck)
fast / fast_y      body output     s4: 16
fast_y_wide        body output     s4: 32
fast_rgb           body output     s4: 16
=================  ==============  ======================================================

Distillation pairs student and teacher features BY NAME: the trainer puts a 1x1 adapter
(student channels -> teacher channels) at each scale name both models have, e.g. student
(resunet_lite) s4/s8 <-> teacher (restormer_tiny) s4/s8 (student s16 has no teacher partner),
and fast s4 <-> teacher s4.
All features are decoder-side (what the network is about to reconstruct from), so the same
name means the same role in both models.

Test-time strategies (the teacher's local windows, the self-ensemble) are wrappers around an architecture
(:mod:`kdsharp.models.wrappers`): a registered name may build a wrapped model (``teacher`` is
``LocalWindows(restormer_tiny(), 192)``); ``unwrap(model)`` gives the architecture, which owns the
weights, the features and the contract above.
"""

from __future__ import annotations

from kdsharp.models import fast, restormer, resunet, unet  # noqa: F401  (registers the models)
from kdsharp.models._registry import ModelEntry, get_entry, model_entries, register_model
from kdsharp.models.fast import FastNet, RepConv
from kdsharp.models.restormer import Restormer
from kdsharp.models.resunet import ResUNet
from kdsharp.models.unet import ResUNetLite, UNet
from kdsharp.models.wrappers import ENSEMBLE_SIZES, LocalWindows, SelfEnsemble, TestTimeWrapper, unwrap

ARCHITECTURES = {cls.__name__: cls for cls in (Restormer, ResUNet, ResUNetLite, UNet, FastNet)}
"""Class name -> class, used to rebuild a model from a checkpoint's ``arch`` + ``arch_kwargs``."""

__all__ = [
    "ARCHITECTURES",
    "FastNet",
    "ENSEMBLE_SIZES",
    "LocalWindows",
    "ModelEntry",
    "RepConv",
    "ResUNet",
    "ResUNetLite",
    "Restormer",
    "SelfEnsemble",
    "TestTimeWrapper",
    "UNet",
    "get_entry",
    "model_entries",
    "register_model",
    "unwrap",
]
