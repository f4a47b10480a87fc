"""Colour conversions (ITU-R BT.601, full range), as in JPEG and most video-call pipelines."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdsharp.ops.layout import eager_only, frame_hwc, is_channels_last, is_plain_cpu_inference

# Rows give Y, Cb, Cr from R, G, B (all in [0, 1]); Cb and Cr are offset by 0.5.
_RGB2YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC2RGB = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]])


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> (N,3,H,W) YCbCr, Y in [0,1], Cb/Cr in [0,1] centred on 0.5."""
    m = _RGB2YCC.to(x.device, x.dtype)
    y = torch.einsum("ij,njhw->nihw", m, x)
    offset = torch.tensor([0.0, 0.5, 0.5], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return y + offset


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) YCbCr as produced by :func:`rgb_to_ycbcr` -> (N,3,H,W) RGB (not clamped)."""
    offset = torch.tensor([0.0, 0.5, 0.5], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    m = _YCC2RGB.to(x.device, x.dtype)
    return torch.einsum("ij,njhw->nihw", m, x - offset)


def cbcr_delta_to_rgb(d: torch.Tensor) -> torch.Tensor:
    """(N,2,H,W) change of Cb, Cr -> (N,3,H,W) the change of R, G, B it makes (Y unchanged)."""
    m = _YCC2RGB[:, 1:].to(d.device, d.dtype)
    return torch.einsum("ij,njhw->nihw", m, d)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) RGB in [0,1] -> (N,1,H,W) luma Y in [0,1]."""
    if x.shape[1] == 3 and is_channels_last(x) and is_plain_cpu_inference(x):
        return _rgb_to_y_opencv(x)
    w = _RGB2YCC[0].to(x.device, x.dtype).view(1, 3, 1, 1)
    if is_channels_last(x):
        return F.conv2d(x, w)  # channels-last: a 1x1 conv is one pass (the weighted sum is ~5x slower)
    return (x * w).sum(dim=1, keepdim=True)  # NCHW: the weighted sum (a 1x1 conv can take a slow path)


@eager_only
def _rgb_to_y_opencv(x: torch.Tensor) -> torch.Tensor:
    """:func:`rgb_to_y` of a channels-last CPU float32 tensor with ``cv2.transform`` on each frame's
    HxWx3 memory: one SIMD pass (1080p on one core: ~1 ms instead of ~13-16 ms for the 1x1 conv,
    which torch runs on a slow path for one output channel)."""
    import cv2

    m = _RGB2YCC[:1].numpy()  # (1, 3): Y from R, G, B
    out = torch.empty((x.shape[0], 1, x.shape[2], x.shape[3]), dtype=torch.float32)
    for n in range(x.shape[0]):
        cv2.transform(frame_hwc(x, n), m, dst=out[n, 0].numpy())
    return out


class RgbToYCbCr(nn.Module):
    """Module form of :func:`rgb_to_ycbcr`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rgb_to_ycbcr(x)


class YCbCrToRgb(nn.Module):
    """Module form of :func:`ycbcr_to_rgb`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ycbcr_to_rgb(x)
