"""Training losses: pixel, perceptual (frozen teacher or VGG), edge/FFT, distillation.

Each loss is a function plus an ``nn.Module``; :func:`build_loss` turns a config dict into the
weighted :class:`CombinedLoss` the trainer uses.
"""

from kdsharp.losses.combined import CombinedLoss, build_loss
from kdsharp.losses.distill import FeatureDistillLoss, OutputDistillLoss, output_distill_loss, shared_scales
from kdsharp.losses.edge import (
    FFTLoss,
    LaplacianPyramidLoss,
    SobelLoss,
    build_edge_loss,
    fft_loss,
    laplacian_pyramid,
    laplacian_pyramid_loss,
    sobel_loss,
)
from kdsharp.losses.perceptual import PerceptualLoss, perceptual_loss
from kdsharp.losses.pixel import (
    CharbonnierLoss,
    L1Loss,
    MSELoss,
    PixelLoss,
    charbonnier_loss,
    l1_loss,
    mse_loss,
    pixel_loss_fn,
)
from kdsharp.losses.vgg import VGGFeatures, vgg_layer_names

__all__ = [
    "CombinedLoss",
    "build_loss",
    "FeatureDistillLoss",
    "OutputDistillLoss",
    "output_distill_loss",
    "shared_scales",
    "FFTLoss",
    "LaplacianPyramidLoss",
    "SobelLoss",
    "build_edge_loss",
    "fft_loss",
    "laplacian_pyramid",
    "laplacian_pyramid_loss",
    "sobel_loss",
    "PerceptualLoss",
    "perceptual_loss",
    "CharbonnierLoss",
    "L1Loss",
    "MSELoss",
    "PixelLoss",
    "charbonnier_loss",
    "l1_loss",
    "mse_loss",
    "pixel_loss_fn",
    "VGGFeatures",
    "vgg_layer_names",
]
