"""Perceptual loss: distance between features of a FROZEN network.

Nothing can be downloaded, so the default feature network is the trained teacher's own encoder
(the features of ``teacher(x, return_features=True)``, scale names 's1','s2','s4','s8'); a VGG16/19
from a local torchvision-layout file is the alternative (:mod:`kdsharp.losses.vgg`).
Gradients flow into the input image, never into the feature network.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.losses.pixel import pixel_loss_fn


def perceptual_loss(
    feats_x: Mapping[str, torch.Tensor],
    feats_y: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    criterion: str = "l1",
) -> torch.Tensor:
    """Weighted sum over layers of ``criterion(feats_x[l], feats_y[l])`` -> 0-dim tensor."""
    fn = pixel_loss_fn(criterion)
    total = None
    for name, w in layer_weights.items():
        term = fn(feats_x[name].float(), feats_y[name].float()) * w
        total = term if total is None else total + term
    if total is None:
        raise ValueError("perceptual loss needs at least one layer")
    return total


class PerceptualLoss(nn.Module):
    """Feature distance between ``x`` and ``y`` under a frozen ``network``.

    Args:
        network: a module returning a dict of features (``VGGFeatures``) or, with
            ``teacher_style=True``, a restoration model called as ``net(x, return_features=True)``.
        layers: list of layer names (equal weights) or dict name -> weight.
        criterion: 'l1' | 'mse' | 'charbonnier'.
    Forward: x, y (N,3,H,W) [0,1] -> 0-dim tensor; ``y``'s features are computed without grad.
    """

    def __init__(self, network: nn.Module, layers, criterion: str = "l1", teacher_style: bool = False):
        super().__init__()
        network.requires_grad_(False)
        network.eval()
        self.network = network
        self.teacher_style = teacher_style
        if isinstance(layers, Mapping):
            self.layer_weights = {str(k): float(v) for k, v in layers.items()}
        else:
            self.layer_weights = {str(k): 1.0 for k in layers}
        if not self.layer_weights:
            raise ValueError("perceptual loss needs at least one layer")
        pixel_loss_fn(criterion)
        self.criterion = criterion

    def train(self, mode: bool = True):  # the feature network always stays frozen in eval mode
        super().train(mode)
        self.network.eval()
        return self

    def features(self, x: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """Features of ``x`` for the configured layers."""
        feats = self.network(x, return_features=True)[1] if self.teacher_style else self.network(x)
        missing = [k for k in self.layer_weights if k not in feats]
        if missing:
            raise ValueError(f"feature network has no layer(s) {missing}; it offers {list(feats)}")
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fy = self.features(y)
        fx = self.features(x)
        return perceptual_loss(fx, fy, self.layer_weights, self.criterion)


def feature_match_size(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize (N,C,h,w) ``x`` to ``like``'s spatial size when they differ."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
