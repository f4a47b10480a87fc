"""Image-quality metrics: PSNR and SSIM (see :mod:`kdsharp.ops.metrics` for definitions)."""

from kdsharp.ops.metrics import PSNR_CAP, capped, psnr, psnr_torch, ssim, ssim_torch

__all__ = ["PSNR_CAP", "capped", "psnr", "psnr_torch", "ssim", "ssim_torch"]
