"""Low-level tensor operations shared by data, losses, models and evaluation.

Everything here works on (N,C,H,W) float tensors; nothing here imports from the rest of kdsharp.
"""
from kdsharp.ops.color import rgb_to_ycbcr, ycbcr_to_rgb, rgb_to_y, RgbToYCbCr, YCbCrToRgb
from kdsharp.ops.filters import (
    gaussian_kernel1d,
    gaussian_kernel2d,
    filter2d,
    gaussian_blur2d,
    sobel,
    spatial_gradient,
    laplacian,
    laplacian_kernel,
    sobel_kernels,
    unsharp_mask,
    unsharp_detail,
    add_detail,
    GaussianBlur2d,
    Sobel,
    Laplacian,
    UnsharpMask,
)
from kdsharp.ops.metrics import psnr, ssim, psnr_torch, ssim_torch

__all__ = [
    "rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_y", "RgbToYCbCr", "YCbCrToRgb",
    "gaussian_kernel1d", "gaussian_kernel2d", "filter2d", "gaussian_blur2d", "sobel",
    "spatial_gradient", "laplacian", "laplacian_kernel", "sobel_kernels", "unsharp_mask",
    "unsharp_detail", "add_detail",
    "GaussianBlur2d", "Sobel", "Laplacian", "UnsharpMask",
    "psnr", "ssim", "psnr_torch", "ssim_torch",
]
