"""Image-quality metrics: PSNR and SSIM (see :mod:`kdsharp.ops.metrics` for definitions)."""
from kdsharp.ops.metrics import psnr, psnr_torch, ssim, ssim_torch

__all__ = ["psnr", "ssim", "psnr_torch", "ssim_torch"]
