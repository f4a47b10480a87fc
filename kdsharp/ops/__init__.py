"""Low-level tensor operations shared by data, losses, models and evaluation.

Everything here works on (N,C,H,W) float tensors; nothing here imports from the rest of kdsharp.
"""

from kdsharp.ops.color import RgbToYCbCr, YCbCrToRgb, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from kdsharp.ops.filters import (
    GaussianBlur2d,
    Laplacian,
    Sobel,
    UnsharpMask,
    add_detail,
    filter2d,
    gaussian_blur2d,
    gaussian_kernel1d,
    gaussian_kernel2d,
    laplacian,
    laplacian_kernel,
    sobel,
    sobel_kernels,
    spatial_gradient,
    unsharp_detail,
    unsharp_mask,
)
from kdsharp.ops.metrics import psnr, psnr_torch, ssim, ssim_torch

__all__ = [
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "rgb_to_y",
    "RgbToYCbCr",
    "YCbCrToRgb",
    "gaussian_kernel1d",
    "gaussian_kernel2d",
    "filter2d",
    "gaussian_blur2d",
    "sobel",
    "spatial_gradient",
    "laplacian",
    "laplacian_kernel",
    "sobel_kernels",
    "unsharp_mask",
    "unsharp_detail",
    "add_detail",
    "GaussianBlur2d",
    "Sobel",
    "Laplacian",
    "UnsharpMask",
    "psnr",
    "ssim",
    "psnr_torch",
    "ssim_torch",
]
